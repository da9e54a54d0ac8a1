"""add-server: flags → LLMServer through the API's own model; contradictions name the flags."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

import llmserver_api
from llmserver_cli import cli
from llmserver_cli.commands import add_server


def build(**values: object) -> llmserver_api.LLMServer:
    return add_server.build(add_server.Flags(**values))  # type: ignore[arg-type]


def refused(**values: object) -> str:
    with pytest.raises(add_server.FlagError) as caught:
        build(**values)
    return str(caught.value.message)


def test_self_hosted_gguf_flags_become_the_spec() -> None:
    server = build(
        name="qwen", model="qwen2.5-0.5b", model_path="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        file="q4.gguf", backend="llama-cpp", gpu_layers=-1, gpus=1,
    )
    wire = server.to_wire()["spec"]
    assert wire["mode"] == "SelfHosted"
    assert wire["source"] == {"huggingFace": {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "file": "q4.gguf", "revision": "main"}}
    assert wire["llamaCpp"] == {"nGpuLayers": -1}
    assert wire["resources"]["gpus"] == 1


def test_pvc_model_path_and_transformers_quantisation() -> None:
    wire = build(name="t", model="t", model_path="pvc:models/llama/7b", backend="transformers", load_in_4bit=True).to_wire()["spec"]
    assert wire["source"] == {"pvc": {"claimName": "models", "path": "llama/7b"}}
    assert wire["transformers"]["loadIn4bit"] is True and wire["transformers"]["loadIn8bit"] is False


def test_proxy_mode_is_inferred_from_proxy_url() -> None:
    wire = build(name="gpt", model="gpt-4o-mini", proxy_url="https://api.openai.com/v1", api_key_secret="openai:key").to_wire()["spec"]
    assert wire["mode"] == "Proxy"
    assert wire["proxy"] == {"url": "https://api.openai.com/v1", "apiKeySecretRef": {"name": "openai", "key": "key"}}
    assert "source" not in wire


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        ({"mode": "proxy", "model_path": "a/b", "proxy_url": "https://x.example/v1"}, ["--model-path", "--mode proxy"]),
        ({"mode": "proxy"}, ["--mode proxy", "--proxy-url"]),
        ({"mode": "self-hosted"}, ["--mode self-hosted", "--model-path"]),
        ({"mode": "self-hosted", "model_path": "a/b", "proxy_url": "https://x.example/v1"}, ["--proxy-url", "--mode proxy"]),
        ({"model_path": "a/b", "backend": "transformers", "load_in_4bit": True, "load_in_8bit": True}, ["--load-in-4bit", "--load-in-8bit"]),
        ({"model_path": "a/b", "backend": "vllm", "gpu_layers": 10}, ["--gpu-layers", "--backend llama-cpp"]),
        ({"model_path": "a/b", "backend": "llama-cpp", "tensor_parallel": 2}, ["--tensor-parallel", "--backend vllm"]),
        ({"model_path": "a/b", "backend": "vllm", "tensor_parallel": 4, "gpus": 2}, ["--tensor-parallel", "--gpus"]),
        ({"model_path": "a/b", "backend": "mlx", "gpus": 1}, ["--gpus", "--backend mlx"]),
        ({"model_path": "a/b", "backend": "llama-cpp", "load_in_8bit": True}, ["--load-in-4bit / --load-in-8bit", "--backend transformers"]),
    ],
)
def test_contradictory_flags_are_refused_naming_the_flags(values: dict[str, object], flags: list[str]) -> None:
    message = refused(name="m", model="m", **values)
    for flag in flags:
        assert flag in message
    assert "spec." not in message


def test_field_errors_name_the_flag() -> None:
    assert refused(name="Not_A_Label", model="m", model_path="a/b").startswith("--name")
    assert "--model-path" in refused(name="m", model="m", model_path="not a repo")
    assert "--gpus" in refused(name="m", model="m", model_path="a/b", gpus=-1)


def test_dry_run_prints_a_valid_manifest_and_contacts_no_cluster() -> None:
    result = CliRunner().invoke(
        cli.main,
        ["add-server", "--name", "tiny", "--model", "tiny", "--model-path", "org/tiny-gguf", "--backend", "llama-cpp",
         "--gpu-layers", "0", "--dry-run", "-o", "yaml", "--kubeconfig", "/nonexistent/kubeconfig"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    obj = yaml.safe_load(result.output)
    server = llmserver_api.LLMServer.model_validate(obj)
    assert server.metadata.name == "tiny" and server.metadata.namespace == "default"
    assert server.spec.llama_cpp is not None and server.spec.llama_cpp.n_gpu_layers == 0


def test_cli_exit_status_and_message_for_contradictions() -> None:
    result = CliRunner().invoke(
        cli.main, ["add-server", "--name", "x", "--model", "x", "--mode", "proxy", "--model-path", "a/b", "--dry-run"]
    )
    assert result.exit_code == 2
    assert "--model-path" in result.output and "--proxy-url" in result.output


def test_every_subcommand_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(cli.main, ["--help"])
    assert top.exit_code == 0
    for name in ("add-server", "download-model", "list-loaded", "load-model", "unload-model", "up"):
        assert name in top.output
        result = runner.invoke(cli.main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output
