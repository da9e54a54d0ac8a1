"""docs/deploying.md holds what the code does: its LLMServers are valid and get the image it says,
the refusal it quotes is the operator's own message, its rocm flavour fits the AMD example, and the
script options and chart values it names exist."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import llmserver_api
import pytest
import yaml
from llmserver_operator import images
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import deployment

REPO = pathlib.Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "deploying.md"


def _yaml_blocks() -> list[Any]:
    text = DOC.read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def _servers() -> list[llmserver_api.LLMServer]:
    return [llmserver_api.LLMServer.model_validate(block) for block in _yaml_blocks()
            if isinstance(block, dict) and block.get("kind") == "LLMServer"]


def test_the_gpu_servers_are_valid_and_run_the_cuda_image() -> None:
    servers = _servers()
    assert {server.spec.backend for server in servers} == {llmserver_api.Backend.LLAMA_CPP, llmserver_api.Backend.VLLM}
    settings = settings_mod.Settings(runtime_images=images.default_catalog())
    for server in servers:
        assert deployment.runtime_image(server, settings).flavour == "cuda"
    [gguf] = [server for server in servers if server.spec.backend == llmserver_api.Backend.LLAMA_CPP]
    assert gguf.spec.llama_cpp is not None and gguf.spec.llama_cpp.n_gpu_layers == -1


def _amd_server() -> llmserver_api.LLMServer:
    manifest = yaml.safe_load((REPO / "examples" / "valid" / "vllm-amd-gpu.yaml").read_text())
    return llmserver_api.LLMServer.model_validate(manifest)


def test_the_quoted_refusal_is_the_operators_message() -> None:
    text = DOC.read_text()
    ready_message = r"-o jsonpath='\{\.status\.conditions\[\?\(@\.type==\"Ready\"\)\]\.message\}'\n"
    quoted = re.search(ready_message + r"(.*?)\n```", text, re.S)
    assert quoted is not None
    choice = images.choose(_amd_server(), images.default_catalog(), "amd.com/gpu")
    assert choice.image is None and " ".join(quoted[1].split()) == choice.reason


def test_the_rocm_flavour_fits_the_amd_example() -> None:
    [values] = [block for block in _yaml_blocks() if isinstance(block, dict) and "runtime" in block]
    rocm = values["runtime"]["images"]["rocm"]
    flavour = images.Flavour(image=f"registry.example/{rocm['repository']}:{rocm['tag']}", engines=rocm["engines"],
                             accelerators=rocm["accelerators"])
    choice = images.choose(_amd_server(), {**images.default_catalog(), "rocm": flavour}, "amd.com/gpu")
    assert choice.flavour == "rocm" and choice.image == flavour.image


@pytest.mark.parametrize("name", sorted(set(re.findall(r"LLMSERVER_[A-Z_]+", DOC.read_text()))))
def test_named_env_exists(name: str) -> None:
    """A build-images.sh option, or an operator setting (pydantic-settings prefix LLMSERVER_OPERATOR_)."""
    if name.startswith("LLMSERVER_OPERATOR_"):
        assert name.removeprefix("LLMSERVER_OPERATOR_").lower() in settings_mod.Settings.model_fields, name
    else:
        assert re.search(rf"\b{name}\b", (REPO / "scripts" / "build-images.sh").read_text()), name


def test_named_chart_values_exist() -> None:
    values = yaml.safe_load((REPO / "charts" / "llmserver" / "values.yaml").read_text())
    named = set(re.findall(r"`((?:image|operator\.image|runtime)\.[a-z.<>A-Z]+)", DOC.read_text()))
    assert named
    for path in named:
        node: Any = values
        for key in path.split("."):
            key = "cpu" if key == "<flavour>" else key
            assert isinstance(node, dict) and key in node, f"{path}: no {key}"
            node = node[key]
