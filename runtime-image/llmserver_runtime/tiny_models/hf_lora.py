"""A tiny peft LoRA adapter for a tiny hf-causal model, so adapters run for real in tests.

peft writes the folder (adapter_config.json + adapter_model.safetensors) in the exact layout its
installed version and vLLM read back. The weights are random on both LoRA matrices
(`init_lora_weights=False`; peft's default zero-initialises B, which would leave the model
unchanged) and scaled so that the adapter visibly changes greedy output: a test comparing an
adapter against its base must be able to fail. Different seeds give different adapters.
"""

from __future__ import annotations

import os
import pathlib

# Every projection of the Llama block: what vLLM and peft both accept as LoRA targets.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANK = 8
# lora_alpha / r scales the update; with random A and B of std ~0.2 this moves the tiny model's
# logits by about as much as its own weights do.
ALPHA = 32
WEIGHT_STD = 0.2


def write(out_dir: pathlib.Path, seed: int, base: pathlib.Path) -> pathlib.Path:
    """Writes a LoRA adapter for the hf-causal model at `base` into `out_dir`; returns the folder."""
    import peft
    import torch
    import transformers

    if not (base / "config.json").is_file():
        raise ValueError(f"--base {base} is not a Hugging Face model directory (no config.json)")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = peft.LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=list(TARGET_MODULES),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    adapted = peft.get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * WEIGHT_STD)
    adapted.save_pretrained(str(out_dir))
    for written in out_dir.iterdir():
        os.chmod(written, 0o644)  # safetensors creates files 0600; other users (pods) read them
    return out_dir
