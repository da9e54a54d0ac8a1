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
