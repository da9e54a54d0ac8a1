"""A GGUF LoRA adapter for a tiny GGUF model, written with gguf-py only (no torch).

The layout is what llama.cpp's convert_lora_to_gguf.py writes and `llama_adapter_lora_init`
reads: `general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha`, the base model's
architecture, and per adapted weight `<name>.lora_a` (rank x in) and `<name>.lora_b` (out x
rank). A and B are both random and non-zero (a trained adapter's B is; peft's fresh B is zero,
which would change nothing), scaled so each weight's update is as large as the weight itself:
outputs then clearly differ from the base model, and adapters written with different seeds
differ from each other.
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from llmserver_runtime.tiny_models import gguf_model

FILE_NAME = "tiny-lora.gguf"
RANK = 8
ALPHA = 16.0
# Per-layer weights the adapter changes (attention, like peft's default q/v targets, plus k/o).
TARGETS = ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")


def _output_path(out: pathlib.Path) -> pathlib.Path:
    """`--output` names the file when it ends in .gguf, else the directory to write into."""
    if out.suffix == ".gguf":
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / FILE_NAME


def _field_text(reader: gguf.GGUFReader, key: str) -> str:
    field = reader.get_field(key)
    if field is None:
        raise ValueError(f"the base GGUF has no {key}: is it a model GGUF?")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def write(out: pathlib.Path, seed: int, base: pathlib.Path) -> pathlib.Path:
    """Writes a LoRA adapter for the GGUF `base` (a file, or the one GGUF in a directory)."""
    if base.is_dir():
        found = sorted(base.glob("*.gguf"))
        if len(found) != 1:
            raise ValueError(f"--base {base} holds {len(found)} GGUF files; name the model file")
        base = found[0]
    reader = gguf.GGUFReader(str(base))
    arch = _field_text(reader, "general.architecture")
    rng = np.random.default_rng(seed)
    path = _output_path(out)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    writer.add_name(f"tiny-lora-{seed}")
    scale = ALPHA / RANK
    adapted = 0
    for tensor in reader.tensors:
        if not tensor.name.startswith("blk.") or not tensor.name.endswith(TARGETS):
            continue
        weight = np.asarray(tensor.data, dtype=np.float32)
        n_out, n_in = weight.shape  # numpy order: rows are outputs
        a = rng.standard_normal((RANK, n_in), dtype=np.float32)
        # std(scale * B @ A) = scale * sqrt(RANK) * std(B) for unit A: match the weight's own std.
        b_std = float(weight.std()) / (scale * np.sqrt(RANK))
        b = (rng.standard_normal((n_out, RANK), dtype=np.float32) * b_std).astype(np.float32)
        writer.add_tensor(f"{tensor.name}.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{tensor.name}.lora_b", np.ascontiguousarray(b))
        adapted += 1
    if adapted == 0:
        raise ValueError(f"--base {base} has none of the attention weights a LoRA adapts ({', '.join(TARGETS)})")
    return gguf_model.finish(writer, path)
