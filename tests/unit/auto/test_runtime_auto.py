"""server/auto.py without starting a server: what `auto` becomes for each tiny model, and the GPU count."""

from __future__ import annotations

import pathlib
import shutil

import pytest
from llmserver_runtime.server import auto, settings
from testkit import models


def _config(model: str, **extra: str) -> settings.ServeSettings:
    return settings.ServeSettings(backend="auto", model=model, served_model_name="m", **extra)


def test_gpu_count_reads_device_files_and_cuda_visible_devices(tmp_path: pathlib.Path) -> None:
    for index in range(2):
        (tmp_path / f"nvidia{index}").touch()
    (tmp_path / "nvidiactl").touch()
    pattern = str(tmp_path / "nvidia[0-9]*")
    assert auto.gpu_count({}, pattern) == 2
    assert auto.gpu_count({"CUDA_VISIBLE_DEVICES": "0"}, pattern) == 1
    assert auto.gpu_count({"CUDA_VISIBLE_DEVICES": ""}, pattern) == 0
    assert auto.gpu_count({}, str(tmp_path / "none[0-9]*")) == 0


def test_gpus_turn_hf_weights_into_vllm_and_cpu_into_transformers() -> None:
    path = models.tiny_model_path("hf-causal")
    assert auto.choose(_config(path), gpus=1).backend == "vllm"
    chosen = auto.choose(_config(path), gpus=0)
    assert chosen.backend == "transformers" and chosen.config.backend == "transformers"
    assert chosen.config.capabilities == "TextGeneration"


def test_gguf_directory_points_the_model_at_its_file(tmp_path: pathlib.Path) -> None:
    shutil.copy(models.tiny_model_path("gguf"), tmp_path / "one.gguf")
    chosen = auto.choose(_config(str(tmp_path)), gpus=0)
    assert chosen.backend == "llama-cpp"
    assert chosen.config.model == str(tmp_path / "one.gguf")


def test_given_capabilities_and_explicit_backends_are_left_alone() -> None:
    path = models.minilm_path()
    chosen = auto.choose(_config(path, capabilities="Embeddings,Rerank"), gpus=0)
    assert chosen.config.capabilities == "Embeddings,Rerank"
    explicit = settings.ServeSettings(backend="fake", model="x", served_model_name="m")
    assert auto.choose(explicit).config is explicit


def test_two_gguf_models_cannot_be_decided(tmp_path: pathlib.Path) -> None:
    for name in ("model-Q4_K_M.gguf", "model-Q8_0.gguf"):
        shutil.copy(models.tiny_model_path("gguf"), tmp_path / name)
    with pytest.raises(auto.Undecided, match="cannot decide.*2 GGUF models"):
        auto.choose(_config(str(tmp_path)), gpus=0)
