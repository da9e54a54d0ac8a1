"""The user docs hold what the code does: every LLMServer in docs/models.md is accepted by the API
model (so a user can apply it as it is), each use case and hardware has one, and the condition
reasons and messages docs/troubleshooting.md tells users to look for are the ones the operator, the
downloader and the engines really write."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import llmserver_api
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
MODELS = REPO / "docs" / "models.md"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"
SOURCES = [
    *(REPO / "operator" / "llmserver_operator").rglob("*.py"),
    *(REPO / "runtime-image" / "llmserver_runtime" / "download").rglob("*.py"),
    *(REPO / "backends" / "llmserver_backends").rglob("*.py"),
]


def _yaml_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"^```ya?ml\n(.*?)^```", path.read_text(), flags=re.MULTILINE | re.DOTALL)


def _servers() -> list[dict[str, Any]]:
    documents = [doc for block in _yaml_blocks(MODELS) for doc in yaml.safe_load_all(block)]
    return [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "LLMServer"]


def test_every_yaml_block_of_models_md_is_an_llmserver() -> None:
    assert len(_servers()) == len(_yaml_blocks(MODELS)) >= 10


@pytest.mark.parametrize("manifest", _servers(), ids=lambda m: m["metadata"]["name"])
def test_every_llmserver_in_models_md_validates(manifest: dict[str, Any]) -> None:
    llmserver_api.LLMServer.model_validate(manifest)


def test_models_md_covers_every_use_case_and_hardware() -> None:
    servers = [llmserver_api.LLMServer.model_validate(m).spec for m in _servers()]
    capabilities = {c for spec in servers for c in spec.capabilities or ()}
    assert capabilities == set(llmserver_api.Capability)
    assert {spec.backend for spec in servers} >= {"llama-cpp", "vllm", "transformers", "mlx", "mlx-vlm"}
    hardware = {"cpu": False, "one gpu": False, "several gpus": False, "mac": False}
    for spec in servers:
        if spec.apple is not None:
            hardware["mac"] = True
        elif spec.resources.gpus == 0:
            hardware["cpu"] = True
        else:
            hardware["one gpu" if spec.resources.gpus == 1 else "several gpus"] = True
    assert all(hardware.values()), hardware
    text = MODELS.read_text()
    for quantisation in ("Q4_K_M", "Q5_K_M", "Q8_0", "AWQ", "GPTQ", "loadIn4bit", "loadIn8bit", "4bit"):
        assert quantisation in text


def test_the_reasons_troubleshooting_md_names_are_written_by_the_code() -> None:
    """Every `Reason` in the guide's condition lines is a reason string in the operator's code."""
    text = TROUBLESHOOTING.read_text()
    named = set(re.findall(r"reason `([A-Z][A-Za-z]+)`", text))
    assert {"Unschedulable", "DownloadFailed", "NoRuntimeImage", "CrashLoopBackOff", "SecretNotFound"} <= named
    code = "\n".join(path.read_text() for path in SOURCES)
    missing = sorted(reason for reason in named if f'"{reason}"' not in code)
    assert not missing, f"docs/troubleshooting.md names reasons no code writes: {missing}"


def test_the_messages_troubleshooting_md_quotes_are_written_by_the_code() -> None:
    """The fixed parts of the messages the guide quotes (before any `...`) appear in the code."""
    quoted = re.findall(r"message `([^`]+)`", TROUBLESHOOTING.read_text())
    assert len(quoted) >= 5
    code = "\n".join(path.read_text() for path in SOURCES)
    for message in quoted:
        for fixed in (part.strip() for part in message.split("...")):
            assert not fixed or fixed in code, f"{fixed!r} (from {message!r}) is not in the code"
