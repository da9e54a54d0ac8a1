"""`llmserver inspect`, run as a real process: against a local directory, and against a Hub
stand-in (testkit.hub_server) through the real huggingface-hub client via HF_ENDPOINT."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
from typing import Any

import pytest
import yaml

from testkit import hub_server

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TOKEN = "hf_secretTOKEN1234567890"


def _fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


def _repo(name: str, **extra: Any) -> hub_server.HubRepo:
    fixture = _fixture(name)
    configs = fixture.get("configs") or {}
    files = {path: configs.get(path, b"weights") for path in fixture["files"]}
    return hub_server.HubRepo(files=files, tags=fixture.get("tags") or [], library_name=fixture.get("library_name"), **extra)


def _inspect(*args: str, endpoint: str | None = None, token: str | None = None,
             home: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_HOME=str(home / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-c", "from llmserver_cli.cli import main; main()", "inspect", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


@pytest.fixture(scope="module")
def hub() -> hub_server.HubServer:
    repos = {
        "Qwen/Qwen2.5-0.5B-Instruct": _repo("qwen2.5-0.5b-instruct"),
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF": _repo("qwen2.5-0.5b-instruct-gguf"),
        "cross-encoder/ms-marco-MiniLM-L6-v2": _repo("ms-marco-minilm-l6-v2"),
        "acme/private-llava": _repo("llava-1.5-7b-hf", token=TOKEN),
        "meta-llama/Llama-3.1-8B-Instruct": _repo("llama-3.1-8b-instruct", gated=True),
    }
    with hub_server.HubServer(repos) as server:
        yield server


def test_a_hub_repo_is_judged_from_metadata_and_configs_only(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    hub.requests.clear()
    result = _inspect("Qwen/Qwen2.5-0.5B-Instruct", endpoint=hub.url, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Format:       HF-safetensors" in result.stdout
    assert "Capabilities: TextGeneration" in result.stdout
    for line in ("gpu    vllm", "cpu    transformers", "apple  mlx"):
        assert line in result.stdout
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests if "/resolve/" in r.path}
    assert fetched == {"config.json"}, "only the small config files are fetched, never the weights"


def test_json_output_for_a_cross_encoder(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    result = _inspect("cross-encoder/ms-marco-MiniLM-L6-v2", "--json", endpoint=hub.url, home=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["format"], report["capabilities"]) == ("cross-encoder", ["Rerank"])
    assert report["backends"]["cpu"]["backend"] == "transformers"
    assert report["backends"]["apple"]["backend"] is None
    assert report["backends"]["apple"]["reason"].startswith("cannot decide: ")


def test_several_quantisations_need_a_file(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    undecided = _inspect("Qwen/Qwen2.5-0.5B-Instruct-GGUF", endpoint=hub.url, home=tmp_path)
    assert undecided.returncode == 3
    assert "9 GGUF models" in undecided.stdout and "spec.source.huggingFace.file" in undecided.stdout
    chosen = _inspect("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "--file", "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                      "--hardware", "cpu", endpoint=hub.url, home=tmp_path)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "cpu    llama-cpp" in chosen.stdout and "apple" not in chosen.stdout


def test_a_private_repo_uses_hf_token_and_never_prints_it(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    hub.requests.clear()
    without = _inspect("acme/private-llava", endpoint=hub.url, home=tmp_path)
    assert without.returncode == 1
    assert "acme/private-llava was not found" in without.stderr and "HF_TOKEN" in without.stderr
    with_token = _inspect("acme/private-llava", endpoint=hub.url, token=TOKEN, home=tmp_path)
    assert with_token.returncode == 0, with_token.stderr
    assert "Capabilities: TextGeneration, Vision" in with_token.stdout and "apple  mlx-vlm" in with_token.stdout
    assert f"Bearer {TOKEN}" in {r.authorization for r in hub.requests}
    assert TOKEN not in without.stdout + without.stderr + with_token.stdout + with_token.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (("meta-llama/Llama-3.1-8B-Instruct",), "is gated: accept its license on the Hub and set HF_TOKEN"),
        (("Qwen/Qwen2.5-0.5B-Instruct", "--revision", "v9"), "has no revision 'v9'"),
    ],
)
def test_hub_refusals_are_one_clear_line(hub: hub_server.HubServer, tmp_path: pathlib.Path, args: tuple[str, ...],
                                         message: str) -> None:
    result = _inspect(*args, endpoint=hub.url, home=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_hub_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _inspect("Qwen/Qwen2.5-0.5B-Instruct", endpoint=f"http://127.0.0.1:{port}", home=tmp_path)
    assert result.returncode == 1
    assert f"the Hugging Face Hub is unreachable at http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_local_directory(tmp_path: pathlib.Path) -> None:
    fixture = _fixture("qwen2-vl-2b-instruct")
    model = tmp_path / "qwen2-vl"
    model.mkdir()
    for name in fixture["files"]:
        content = fixture["configs"].get(name)
        (model / name).write_text(json.dumps(content) if content is not None else "")
    result = _inspect(str(model), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(local path)" in result.stdout and "Capabilities: TextGeneration, Vision" in result.stdout
    assert "Why:          Hugging Face weights" in result.stdout


def test_neither_path_nor_repo_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    result = _inspect(str(tmp_path / "no-such-dir" / "x" / "y"), home=tmp_path)
    assert result.returncode == 2
    assert "neither an existing path nor a Hub repo id" in result.stderr
