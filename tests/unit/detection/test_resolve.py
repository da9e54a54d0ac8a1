"""`detection.resolve`: explicit spec values win, detection fills `auto` and omitted
capabilities, and what the files contradict is reported instead of obeyed blindly."""

from __future__ import annotations

from typing import Any

import pytest

from llmserver_api import LLMServerStatus, detection, llmserver

CAUSAL = detection.ModelFiles(
    files=("config.json", "model.safetensors", "tokenizer.json"),
    configs={"config.json": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}},
    name="Qwen/Qwen2.5-0.5B-Instruct",
)
GGUF = detection.ModelFiles(files=("qwen2.5-0.5b-instruct-q4_k_m.gguf",), name="Qwen/Qwen2.5-0.5B-Instruct-GGUF")
MLX = detection.ModelFiles(
    files=("config.json", "model.safetensors"),
    configs={"config.json": {"architectures": ["LlamaForCausalLM"], "quantization": {"bits": 4, "group_size": 64}}},
)
UNKNOWN = detection.ModelFiles(files=("README.md",))


def _spec(**fields: Any) -> llmserver.LLMServerSpec:
    return llmserver.LLMServerSpec.model_validate({"model": "m", "source": {"pvc": {"claimName": "c"}}, **fields})


@pytest.mark.parametrize(
    "fields,backend",
    [
        ({}, "transformers"),
        ({"resources": {"gpus": 1}}, "vllm"),
        ({"apple": {}}, "mlx"),
    ],
)
def test_auto_takes_the_hardware_from_the_spec(fields: dict[str, Any], backend: str) -> None:
    resolved = detection.resolve(_spec(**fields), CAUSAL)
    assert resolved.backend.value == backend and resolved.complete
    assert resolved.capabilities == (llmserver.Capability.TEXT_GENERATION,)
    assert "Qwen2ForCausalLM generates text" in resolved.reason


def test_explicit_values_win_and_are_named_in_the_reason() -> None:
    spec = _spec(backend="vllm", capabilities=["TextGeneration"], resources={"gpus": 0})
    resolved = detection.resolve(spec, CAUSAL)
    assert resolved.backend is llmserver.Backend.VLLM and resolved.complete
    assert "spec.backend is vllm" in resolved.reason and "spec.capabilities given" in resolved.reason


def test_asking_for_vision_of_a_text_model_is_a_contradiction() -> None:
    resolved = detection.resolve(_spec(capabilities=["TextGeneration", "Vision"]), CAUSAL)
    assert not resolved.complete
    (contradiction,) = resolved.contradictions
    assert "asks for Vision" in contradiction and "offers TextGeneration" in contradiction
    assert resolved.capabilities == (llmserver.Capability.TEXT_GENERATION, llmserver.Capability.VISION)


@pytest.mark.parametrize(
    "model,backend,words",
    [
        (GGUF, "vllm", "cannot load GGUF weights (use llama-cpp)"),
        (MLX, "transformers", "cannot load MLX weights (use mlx or mlx-vlm)"),
        (CAUSAL, "llama-cpp", "needs a GGUF file, but the model is HF-safetensors"),
    ],
)
def test_a_backend_that_cannot_load_the_format_is_a_contradiction(
    model: detection.ModelFiles, backend: str, words: str
) -> None:
    resolved = detection.resolve(_spec(backend=backend), model)
    assert resolved.backend.value == backend  # the spec still wins ...
    assert any(words in c for c in resolved.contradictions), resolved.contradictions  # ... but it is reported
    assert not resolved.complete


def test_undecidable_files_leave_auto_unresolved_with_the_reason() -> None:
    resolved = detection.resolve(_spec(), UNKNOWN)
    assert resolved.backend is None and resolved.capabilities == () and not resolved.complete
    assert resolved.reason.startswith("cannot decide: no model weights")


def test_explicit_everything_serves_files_detection_cannot_judge() -> None:
    resolved = detection.resolve(_spec(backend="transformers", capabilities=["Embeddings"]), UNKNOWN)
    assert resolved.complete and resolved.contradictions == ()


def test_resolution_fits_the_status_schema() -> None:
    resolved = detection.resolve(_spec(resources={"gpus": 2}), CAUSAL)
    status = LLMServerStatus.model_validate({"resolved": resolved.to_status().to_wire()})
    assert status.resolved.backend is llmserver.Backend.VLLM
    assert status.resolved.format == "HF-safetensors"
    assert status.resolved.reason == resolved.reason


@pytest.mark.parametrize(
    "system,machine,gpus,hardware",
    [
        ("Linux", "x86_64", 0, "cpu"),
        ("Linux", "x86_64", 2, "gpu"),
        ("Darwin", "arm64", 0, "apple"),
        ("Darwin", "x86_64", 0, "cpu"),  # an Intel Mac has no MLX
        ("Linux", "aarch64", 0, "cpu"),  # ARM Linux is not a Mac
    ],
)
def test_hardware_of_machine(system: str, machine: str, gpus: int, hardware: str) -> None:
    assert detection.hardware_of_machine(system, machine, gpus).value == hardware
