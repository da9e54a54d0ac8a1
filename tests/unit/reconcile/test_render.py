"""`llmserver render -f FILE` prints exactly what the builders produce, and names bad fields."""

from __future__ import annotations

import pathlib

import llmserver_api
import pytest
import yaml
from click.testing import CliRunner
from llmserver_cli import cli
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import plan

pytestmark = pytest.mark.timeout(60)

MANIFESTS = """\
apiVersion: serving.llmserver.dev/v1alpha1
kind: LLMServer
metadata: {name: qwen, namespace: ml}
spec:
  model: qwen
  backend: vllm
  resources: {gpus: 2}
  source: {huggingFace: {repo: Qwen/Qwen2.5-0.5B-Instruct}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: serving.llmserver.dev/v1alpha1
kind: LLMServer
metadata: {name: gpt}
spec: {model: gpt-4o-mini, mode: Proxy, proxy: {url: "https://api.openai.com/v1"}}
"""


CATALOG = ('{"cpu": {"image": "reg.example/rt:9.9.9", "engines": ["llama-cpp", "transformers"]}, '
           '"cuda": {"image": "reg.example/rt-cuda:9.9.9", "engines": ["vllm"], "accelerators": ["nvidia.com/gpu"]}}')


def test_render_prints_the_builders_objects(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES", CATALOG)
    path = tmp_path / "servers.yaml"
    path.write_text(MANIFESTS)
    result = CliRunner().invoke(cli.main, ["render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    printed = [doc for doc in yaml.safe_load_all(result.output) if doc]
    server = llmserver_api.LLMServer.model_validate(yaml.safe_load(MANIFESTS.split("---")[0]))
    assert printed == plan.all_children(server, settings_mod.Settings())
    assert [doc["kind"] for doc in printed][-3:] == ["Deployment", "Service", "NetworkPolicy"]
    assert printed[-3]["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example/rt-cuda:9.9.9"
    assert "image reg.example/rt-cuda:9.9.9 (flavour cuda carries vllm for nvidia.com/gpu)" in result.output
    assert "# LLMServer default/gpt: Proxy mode, no objects" in result.output


def test_render_reads_stdin_and_defaults_the_namespace() -> None:
    single = MANIFESTS.split("---")[0].replace("namespace: ml", "namespace: null")
    result = CliRunner().invoke(cli.main, ["render", "-f", "-", "-n", "team"], input=single)
    assert result.exit_code == 0, result.output
    assert {doc["metadata"]["namespace"] for doc in yaml.safe_load_all(result.output) if doc} == {"team"}


def test_render_names_the_broken_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MANIFESTS.replace("gpus: 2", "gpus: -3"))
    result = CliRunner().invoke(cli.main, ["render", "-f", str(path)])
    assert result.exit_code != 0
    assert "document 1 (LLMServer qwen)" in result.output and "spec.resources.gpus" in result.output


def test_render_without_llmservers_is_an_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "none.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = CliRunner().invoke(cli.main, ["render", "-f", str(path)])
    assert result.exit_code != 0 and "no LLMServer" in result.output
    missing = CliRunner().invoke(cli.main, ["render", "-f", str(tmp_path / "absent.yaml")])
    assert missing.exit_code != 0 and "cannot read" in missing.output


def test_a_server_no_image_fits_is_named_and_fails_the_command(tmp_path: pathlib.Path) -> None:
    """Default catalog: vLLM without GPUs has no flavour; the other server still renders."""
    path = tmp_path / "servers.yaml"
    path.write_text(MANIFESTS.replace("resources: {gpus: 2}", "resources: {gpus: 0}") + """---
apiVersion: serving.llmserver.dev/v1alpha1
kind: LLMServer
metadata: {name: tiny}
spec: {model: tiny, backend: llama-cpp, source: {huggingFace: {repo: a/b, file: m.gguf}}}
""")
    result = CliRunner().invoke(cli.main, ["render", "-f", str(path)])
    assert result.exit_code == 1
    assert "# LLMServer ml/qwen: NoRuntimeImage: no runtime image flavour carries the vllm engine for CPU" in result.output
    assert "runtime.images" in result.output
    printed = [doc for doc in yaml.safe_load_all(result.output.split("Error:")[0]) if doc]
    deployments = [doc for doc in printed if doc["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == ["tiny"]
    assert not any(doc["metadata"].get("namespace") == "ml" for doc in printed)
    image = deployments[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/llmserver/llmserver-runtime:0.1.0"
