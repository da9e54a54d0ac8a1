"""The llama-cpp backend's pure setup rules (default slots, adapter files) and the GGUF LoRA
writer's file layout, without loading a model."""

from __future__ import annotations

import pathlib

import gguf
import numpy as np
import pytest
from llmserver_backends import base, llama_cpp_context
from llmserver_runtime.tiny_models import gguf_lora


@pytest.mark.parametrize(
    ("gpu_layers", "cpus", "slots"),
    [(0, 1, 4), (0, 2, 4), (0, 15, 4), (0, 16, 8), (0, 64, 8), (-1, 2, 8), (12, 4, 8)],
)
def test_default_slots_follow_the_hardware(gpu_layers: int, cpus: int, slots: int) -> None:
    assert llama_cpp_context.default_parallel(gpu_layers, cpus) == slots


def test_an_adapter_directory_resolves_to_its_one_gguf(tmp_path: pathlib.Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "adapter.gguf").write_bytes(b"")
    (tmp_path / "README.md").write_text("x")
    assert llama_cpp_context.adapter_file("a", str(tmp_path)) == tmp_path / "sub" / "adapter.gguf"
    assert llama_cpp_context.adapter_file("a", str(tmp_path / "x.gguf")) == tmp_path / "x.gguf"
    (tmp_path / "other.gguf").write_bytes(b"")
    with pytest.raises(base.BackendError, match="holds 2 GGUF files"):
        llama_cpp_context.adapter_file("a", str(tmp_path))


def _base_model(path: pathlib.Path) -> pathlib.Path:
    """A two-weight 'llama' GGUF: enough for the writer to read shapes from."""
    writer = gguf.GGUFWriter(str(path), "llama")
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((10, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", rng.standard_normal((16, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_v.weight", rng.standard_normal((8, 16), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", rng.standard_normal((32, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _field(reader: gguf.GGUFReader, key: str) -> object:
    field = reader.get_field(key)
    assert field is not None, key
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types[0] == gguf.GGUFValueType.STRING else float(value[0])


def test_the_lora_file_is_a_llama_cpp_adapter_for_its_base(tmp_path: pathlib.Path) -> None:
    base_model = _base_model(tmp_path / "base.gguf")
    path = gguf_lora.write(tmp_path / "out" / "a.gguf", 1, base_model)
    assert path == tmp_path / "out" / "a.gguf"
    reader = gguf.GGUFReader(str(path))
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.type") == "adapter"
    assert _field(reader, "adapter.type") == "lora"
    assert _field(reader, "adapter.lora.alpha") == gguf_lora.ALPHA
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    # Only attention weights, A as (rank, in) and B as (out, rank): llama.cpp's layout.
    assert set(tensors) == {f"blk.0.{w}.weight.lora_{p}" for w in ("attn_q", "attn_v") for p in "ab"}
    assert tensors["blk.0.attn_v.weight.lora_a"].shape == (gguf_lora.RANK, 16)
    assert tensors["blk.0.attn_v.weight.lora_b"].shape == (8, gguf_lora.RANK)
    assert all(np.abs(t).max() > 0 for t in tensors.values()), "a zero B would leave the model unchanged"


def test_adapters_from_different_seeds_differ_and_a_directory_gets_the_default_name(tmp_path: pathlib.Path) -> None:
    base_model = _base_model(tmp_path / "base.gguf")
    one = gguf_lora.write(tmp_path / "one", 1, base_model)
    two = gguf_lora.write(tmp_path / "two", 2, base_model)
    assert one.name == two.name == gguf_lora.FILE_NAME
    first, second = (
        {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(p)).tensors} for p in (one, two)
    )
    assert not np.array_equal(first["blk.0.attn_q.weight.lora_b"], second["blk.0.attn_q.weight.lora_b"])


def test_llama_s_own_lora_arguments_are_refused_for_adapters() -> None:
    from llmserver_backends import llama_cpp

    config = base.BackendConfig(model_path="m.gguf", served_model_name="m", extra_args=("lora_path=/a.gguf",))
    with pytest.raises(ValueError, match="--adapter NAME=PATH"):
        llama_cpp.LlamaCppBackend(config)
