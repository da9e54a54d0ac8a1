"""Tiny LoRA adapters for the engine adapter tests, made by the real `tiny-model` command.

`hf_lora` writes a peft adapter (`tiny-model --kind hf-lora`, random A and B so outputs change)
for the tiny hf-causal model; different seeds give adapters that answer differently."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from testkit import runtime_server


def hf_lora(base: str, out: pathlib.Path, seed: int) -> str:
    """A peft LoRA folder for the hf-causal model at `base`, written into `out`."""
    result = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "hf-lora", "--base", base,
         "--output", str(out), "--seed", str(seed)],
        capture_output=True, text=True, timeout=600, check=False, env=runtime_server.env(),
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"tiny-model --kind hf-lora failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


def mlx_lora(base: str, out: pathlib.Path, seed: int, rank: int = 4) -> str:
    """An adapter in mlx-lm's own layout (what `mlx_lm.lora` training writes) for the hf-causal
    model at `base`: LoRA on every Linear of the last two blocks, random A and B (imports mlx)."""
    import json

    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_flatten
    from mlx_lm.tuner import utils as tuner_utils

    model, _ = mlx_lm.load(base)
    parameters = {"rank": rank, "scale": 4.0, "dropout": 0.0}
    tuner_utils.linear_to_lora_layers(model, 2, parameters)
    mx.random.seed(seed)
    weights = {
        name: mx.random.normal(value.shape) * 0.2
        for name, value in tree_flatten(model.parameters())
        if name.rsplit(".", 1)[-1] in ("lora_a", "lora_b")
    }
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    config = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": parameters}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return str(out)
