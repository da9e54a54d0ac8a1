"""add-server --adapter and the new --model-path forms (s3, url, OWNER/NAME/FILE), and --local
writing the local set: flags -> spec through the API's own model, errors naming the flags."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from click.testing import CliRunner

import llmserver_api
from llmserver_cli import cli
from llmserver_cli.commands import add_local, add_server
from llmserver_cli.local import server_set, settings

SHA = "cd" * 32


def build(**values: object) -> llmserver_api.LLMServer:
    return add_server.build(add_server.Flags(**values))  # type: ignore[arg-type]


def refused(**values: object) -> str:
    with pytest.raises(add_server.FlagError) as caught:
        build(**values)
    return str(caught.value.message)


def test_adapters_become_spec_adapters_in_order() -> None:
    wire = build(
        name="base", model="base", model_path="Org/Base", endpoint="http://minio:9000",
        adapters=("sql=Org/sql-lora", "web=s3://loras/web/", f"chat=https://m.example/chat.gguf#sha256={SHA}",
                  "pv=pvc:loras/pv"),
    ).to_wire()["spec"]  # fmt: skip
    assert wire["adapters"] == [
        {"name": "sql", "source": {"huggingFace": {"repo": "Org/sql-lora", "revision": "main"}}},
        {"name": "web", "source": {"s3": {"bucket": "loras", "prefix": "web", "endpoint": "http://minio:9000"}}},
        {"name": "chat", "source": {"url": {"url": "https://m.example/chat.gguf", "sha256": SHA}}},
        {"name": "pv", "source": {"pvc": {"claimName": "loras", "path": "pv"}}},
    ]
    assert wire["source"] == {"huggingFace": {"repo": "Org/Base", "revision": "main"}}


def test_model_path_takes_s3_url_and_a_repo_file() -> None:
    spec = build(name="m", model="m", model_path="s3://bucket/q.gguf", region="eu-west-1", s3_secret="keys").to_wire()["spec"]
    assert spec["source"] == {"s3": {"bucket": "bucket", "key": "q.gguf", "region": "eu-west-1",
                                     "credentialsSecretRef": {"name": "keys"}}}  # fmt: skip
    spec = build(name="m", model="m", model_path=f"https://m.example/q.gguf#sha256={SHA}").to_wire()["spec"]
    assert spec["source"] == {"url": {"url": "https://m.example/q.gguf", "sha256": SHA}}
    spec = build(name="m", model="m", model_path="Org/Model/q4.gguf", revision="v1").to_wire()["spec"]
    assert spec["source"] == {"huggingFace": {"repo": "Org/Model", "file": "q4.gguf", "revision": "v1"}}


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"model_path": "a/b", "adapters": ("x=a/c", "x=a/d")}, "--adapter names an adapter twice"),
        ({"proxy_url": "https://p.example/v1", "adapters": ("x=a/c",)}, "--adapter cannot be used with --mode proxy"),
        ({"model_path": "a/b", "adapters": ("bad name=a/c",)}, "--adapter: "),
        ({"model_path": "a/b", "adapters": ("x",)}, "--adapter takes NAME=SOURCE"),
        ({"model_path": "a/b", "adapters": ("x=https://m.example/l.gguf",)}, "--adapter x: an URL source needs its checksum"),
        ({"model_path": "a/b", "endpoint": "http://minio:9000"}, "--endpoint / --region / --s3-secret apply to s3://"),
        ({"model_path": "s3://b/k", "file": "x.gguf"}, "--file / --revision / --token-secret apply to Hugging Face"),
        ({"model_path": "a/b/c.gguf", "file": "x.gguf"}, "already names the file"),
        ({"model_path": "s3://b/k", "endpoint": "not a url"}, "--endpoint: "),
        ({"model_path": "/abs/model.gguf"}, "--model-path '/abs/model.gguf' is a local path"),
    ],
)
def test_refusals_name_the_flags(values: dict[str, object], said: str) -> None:
    assert said in refused(name="m", model="m", **values)


def test_local_adds_to_the_set_with_the_file_as_source(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "llama-2-7b.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    state_dir = tmp_path / "state"
    runner = CliRunner()
    result = runner.invoke(cli.main, ["add-server", "--local", "llama", "--model-path", str(model),
                                      "--backend", "llama-cpp", "--state-dir", str(state_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added llama" in result.output and "llmserver up" in result.output
    written = yaml.safe_load((state_dir / "servers" / "llama.yaml").read_text())
    assert written["metadata"]["name"] == "llama" and written["spec"]["model"] == "llama"  # --model defaults to NAME
    assert written["spec"]["source"] == {"pvc": {"claimName": str(tmp_path), "path": model.name}}
    loaded = server_set.load(server_set.folder(settings.LocalSettings(state_dir=state_dir)))
    assert [m.name for m in loaded] == ["llama"]  # an ordinary manifest `up` reads

    again = runner.invoke(cli.main, ["add-server", "llama", "--local", "--model", "llama-7b", "--model-path", str(model),
                                     "--state-dir", str(state_dir)])  # fmt: skip
    assert again.exit_code == 0 and "updated llama" in again.output
    clash = runner.invoke(cli.main, ["add-server", "--local", "other", "--model", "llama-7b", "--model-path", str(model),
                                     "--state-dir", str(state_dir)])  # fmt: skip
    assert clash.exit_code == 1 and "already served by 'llama'" in clash.output
    missing = runner.invoke(cli.main, ["add-server", "--local", "gone", "--model-path", str(tmp_path / "nope.gguf"),
                                       "--state-dir", str(state_dir)])  # fmt: skip
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert sorted(p.name for p in (state_dir / "servers").iterdir()) == ["llama.yaml"]


def test_name_and_model_are_required_as_before_in_cluster_mode() -> None:
    runner = CliRunner()
    no_name = runner.invoke(cli.main, ["add-server", "--model", "m", "--model-path", "a/b", "--dry-run"])
    assert no_name.exit_code == 2 and "NAME or --name" in no_name.output
    no_model = runner.invoke(cli.main, ["add-server", "--name", "m", "--model-path", "a/b", "--dry-run"])
    assert no_model.exit_code == 2 and "--model is required" in no_model.output
    both = runner.invoke(cli.main, ["add-server", "x", "--name", "y", "--model", "m", "--model-path", "a/b", "--dry-run"])
    assert both.exit_code == 2 and "differ" in both.output


def test_remove_server_takes_it_out_by_name_or_model(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    runner = CliRunner()
    state = ["--state-dir", str(tmp_path / "state")]
    for name in ("one", "two"):
        assert runner.invoke(cli.main, ["add-server", "--local", name, "--model", f"{name}-model",
                                        "--model-path", str(model), *state]).exit_code == 0  # fmt: skip
    assert runner.invoke(cli.main, ["remove-server", "--local", "one", *state]).exit_code == 0
    by_model = runner.invoke(cli.main, ["remove-server", "--local", "two-model", *state])
    assert by_model.exit_code == 0 and "removed two-model" in by_model.output
    assert list((tmp_path / "state" / "servers").iterdir()) == []
    gone = runner.invoke(cli.main, ["remove-server", "--local", "one", *state])
    assert gone.exit_code == 1 and "not in the local set" in gone.output
    escape = runner.invoke(cli.main, ["remove-server", "--local", "../state/x", *state])
    assert escape.exit_code == 1


def test_the_seeds_form_without_a_name_names_the_server_after_the_file(tmp_path: pathlib.Path) -> None:
    models = tmp_path / ".cache" / "models"
    models.mkdir(parents=True)
    (models / "llama-2-7b.Q4_K_M.gguf").write_bytes(b"GGUF")
    result = CliRunner().invoke(cli.main, ["add-server", "--local", "--model-path", str(models / "llama-2-7b.Q4_K_M.gguf"),
                                           "--backend", "llama-cpp", "--state-dir", str(tmp_path / "state")])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "state" / "servers" / "llama-2-7b-q4-k-m.yaml").read_text())
    assert written["metadata"]["name"] == written["spec"]["model"] == "llama-2-7b-q4-k-m"
    assert add_local.derived_name("Org/Repo/Qwen2.5_0.5B.gguf") == "qwen2-5-0-5b"
    assert add_local.derived_name("s3://bucket/models/qwen/") == "qwen"
