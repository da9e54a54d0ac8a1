"""Pure builders of the command lines local mode runs (docs/contracts.md, "The runtime command
line"). Every child is `python -m llmserver_runtime ...` with this interpreter: the operator
package never imports the runtime, it starts it."""

from __future__ import annotations

import pathlib
from typing import Any

import llmserver_api

# spec block (wire name) -> [(field wire name, serve flag)]; booleans become bare flags
_BLOCK_FLAGS: dict[str, list[tuple[str, str]]] = {
    "llamaCpp": [("nGpuLayers", "--n-gpu-layers"), ("nCtx", "--n-ctx"), ("nBatch", "--n-batch"), ("nThreads", "--n-threads")],
    "vllm": [
        ("tensorParallelSize", "--tensor-parallel-size"),
        ("gpuMemoryUtilization", "--gpu-memory-utilization"),
        ("maxModelLen", "--max-model-len"),
        ("dtype", "--dtype"),
    ],
    "transformers": [("loadIn4bit", "--load-in-4bit"), ("loadIn8bit", "--load-in-8bit"), ("dtype", "--dtype")],
    "mlx": [("maxKvSize", "--max-kv-size")],
    "mlxVlm": [("maxKvSize", "--max-kv-size"), ("maxTokens", "--max-tokens")],
}
_DEFAULT_VALUES = {"dtype": "auto"}


def _block_args(block: dict[str, Any], flags: list[tuple[str, str]]) -> list[str]:
    args: list[str] = []
    for field, flag in flags:
        value = block.get(field)
        if value is None or value is False or _DEFAULT_VALUES.get(field) == value:
            continue
        args.extend([flag] if value is True else [flag, str(value)])
    return args


def serve(
    python: str, server: llmserver_api.LLMServer, model_path: pathlib.Path, host: str, port: int
) -> list[str]:
    """`python -m llmserver_runtime serve ...` for one self-hosted server."""
    spec = server.spec
    wire = spec.to_wire()
    argv = [
        python, "-m", "llmserver_runtime", "serve",
        "--backend", spec.backend.value,
        "--model", str(model_path),
        "--served-model-name", spec.model,
        "--host", host,
        "--port", str(port),
    ]  # fmt: skip
    if spec.capabilities:
        argv += ["--capabilities", ",".join(capability.value for capability in spec.capabilities)]
    if spec.trust_remote_code:
        argv.append("--trust-remote-code")
    for block, flags in _BLOCK_FLAGS.items():
        if block in wire:
            argv += _block_args(wire[block], flags)
    if spec.extra_args:
        argv += ["--", *spec.extra_args]
    return argv


def download(python: str, server: llmserver_api.LLMServer, cache_dir: pathlib.Path) -> list[str]:
    """`python -m llmserver_runtime download ...` for a Hugging Face source (token from env HF_TOKEN)."""
    hf = server.spec.source.hugging_face if server.spec.source else None
    if hf is None:
        raise ValueError("only a source.huggingFace is downloaded")
    return download_repo(python, hf.repo, hf.file, hf.revision, cache_dir)


def download_repo(python: str, repo: str, file: str | None, revision: str, cache_dir: pathlib.Path) -> list[str]:
    """The downloader's command line for one repo (and optionally one file of it)."""
    argv = [python, "-m", "llmserver_runtime", "download", "--repo", repo, "--revision", revision]
    if file:
        argv += ["--file", file]
    return argv + ["--cache-dir", str(cache_dir)]


def gateway(python: str, config: pathlib.Path, host: str, port: int) -> list[str]:
    """The gateway in static-config mode: it reloads `config` whenever local mode rewrites it."""
    return [python, "-m", "llmserver_runtime", "gateway", "--config", str(config), "--host", host, "--port", str(port)]


def tiny_model(python: str, kind: str, out: pathlib.Path) -> list[str]:
    """The offline tiny-model generator; its last stdout line is the path to serve."""
    return [python, "-m", "llmserver_runtime", "tiny-model", "--kind", kind, "--out", str(out)]
