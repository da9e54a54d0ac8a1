"""vLLM with tensor parallelism over two real GPUs (the CUDA image's path).

Everything else about the vLLM backend runs on CPU in test_vllm_serve.py; only sharding one
replica over several GPUs needs the hardware, so only this is marked `gpu`.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from testkit import engine_checks, runtime_server


def _nvidia_gpus() -> int:
    """GPUs nvidia-smi lists (0 without the NVIDIA driver); cheap, unlike importing torch."""
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        _nvidia_gpus() < 2, reason="tensor_parallel_size=2 needs two NVIDIA GPUs and the CUDA vLLM build"
    ),
]


def test_tensor_parallel_two_gpus_serves(tmp_path: pathlib.Path, tiny_hf_causal: str) -> None:
    with runtime_server.start(
        tmp_path, "vllm", tiny_hf_causal, "tiny-tp2", "--tensor-parallel-size", "2", "--max-model-len", "512",
        ready_timeout=600,
    ) as server:  # fmt: skip
        answer = server.client().chat.completions.create(
            model="tiny-tp2", messages=engine_checks.QUESTION, max_tokens=8, **engine_checks.GREEDY
        )
        assert answer.usage is not None and answer.usage.completion_tokens >= 1
        assert "tensor_parallel_size=2" in server.output()
