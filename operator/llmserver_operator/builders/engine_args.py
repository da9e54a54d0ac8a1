"""The runtime's `serve` command line, one pure builder per backend (docs/contracts.md).

The Deployment builder and the Mac agent both turn an LLMServer into the same argument list, so
it lives here, free of Kubernetes types.
"""

from __future__ import annotations

from collections.abc import Callable

import llmserver_api
from llmserver_api import llmserver

Backend = llmserver_api.Backend
Spec = llmserver_api.LLMServerSpec


def resolve_backend(spec: Spec) -> Backend:
    """The engine a server runs on. `auto` is passed to the runtime, which decides from the files.

    This is the one place that maps a spec to its engine: backend detection plugs in here.
    """
    return spec.backend


def _flag(name: str, value: object) -> list[str]:
    return [] if value is None else [name, str(value)]


def llama_cpp_args(spec: Spec) -> list[str]:
    """llama-cpp flags; with GPUs and no explicit n_gpu_layers every layer is offloaded."""
    cfg = spec.llama_cpp or llmserver.LlamaCppConfig()
    layers = cfg.n_gpu_layers
    if layers is None and spec.resources.gpus > 0:
        layers = -1
    return (
        _flag("--n-gpu-layers", layers)
        + _flag("--n-ctx", cfg.n_ctx)
        + _flag("--n-batch", cfg.n_batch)
        + _flag("--n-threads", cfg.n_threads)
    )


def vllm_args(spec: Spec) -> list[str]:
    """vLLM flags; tensor parallelism defaults to the GPUs of one replica."""
    cfg = spec.vllm or llmserver.VllmConfig()
    tensor_parallel = cfg.tensor_parallel_size
    if tensor_parallel is None and spec.resources.gpus > 0:
        tensor_parallel = spec.resources.gpus
    return (
        _flag("--tensor-parallel-size", tensor_parallel)
        + _flag("--gpu-memory-utilization", cfg.gpu_memory_utilization)
        + _flag("--max-model-len", cfg.max_model_len)
        + ([] if cfg.dtype == "auto" else ["--dtype", cfg.dtype])
    )


def transformers_args(spec: Spec) -> list[str]:
    """transformers flags: bitsandbytes quantisation and dtype."""
    cfg = spec.transformers or llmserver.TransformersConfig()
    out: list[str] = []
    if cfg.load_in_4bit:
        out.append("--load-in-4bit")
    if cfg.load_in_8bit:
        out.append("--load-in-8bit")
    if cfg.dtype != "auto":
        out += ["--dtype", cfg.dtype]
    return out


def mlx_args(spec: Spec) -> list[str]:
    """mlx-lm flags."""
    cfg = spec.mlx or llmserver.MlxConfig()
    return _flag("--max-kv-size", cfg.max_kv_size)


def mlx_vlm_args(spec: Spec) -> list[str]:
    """mlx-vlm flags."""
    cfg = spec.mlx_vlm or llmserver.MlxVlmConfig()
    return _flag("--max-kv-size", cfg.max_kv_size) + _flag("--max-tokens", cfg.max_tokens)


def auto_args(spec: Spec) -> list[str]:
    """With `auto`, every config block the user wrote is passed on; the runtime uses its engine's."""
    out: list[str] = []
    if spec.llama_cpp is not None:
        out += llama_cpp_args(spec)
    if spec.vllm is not None:
        out += vllm_args(spec)
    if spec.transformers is not None:
        out += transformers_args(spec)
    if spec.mlx is not None:
        out += mlx_args(spec)
    if spec.mlx_vlm is not None:
        out += mlx_vlm_args(spec)
    return out


BUILDERS: dict[Backend, Callable[[Spec], list[str]]] = {
    Backend.LLAMA_CPP: llama_cpp_args,
    Backend.VLLM: vllm_args,
    Backend.TRANSFORMERS: transformers_args,
    Backend.MLX: mlx_args,
    Backend.MLX_VLM: mlx_vlm_args,
    Backend.AUTO: auto_args,
}

# Engines known to run with a read-only root filesystem once HOME and caches point at /tmp.
# vLLM (torch.compile, triton, flashinfer JIT) writes next to its packages, so it keeps a writable root.
READ_ONLY_ROOT: dict[Backend, bool] = {
    Backend.LLAMA_CPP: True,
    Backend.TRANSFORMERS: True,
    Backend.VLLM: False,
    Backend.MLX: True,
    Backend.MLX_VLM: True,
    Backend.AUTO: False,
}


def serve_args(spec: Spec, model_path: str, port: int, host: str = "0.0.0.0") -> list[str]:
    """Arguments after `llmserver-runtime`: `serve ...` with the backend's flags and spec.extraArgs."""
    backend = resolve_backend(spec)
    args = [
        "serve",
        "--backend", backend.value,
        "--model", model_path,
        "--served-model-name", spec.model,
        "--host", host,
        "--port", str(port),
    ]
    if spec.capabilities:
        args += ["--capabilities", ",".join(capability.value for capability in spec.capabilities)]
    if spec.trust_remote_code:
        args.append("--trust-remote-code")
    args += BUILDERS[backend](spec)
    if spec.extra_args:
        args += ["--", *spec.extra_args]
    return args


def needs_shm(spec: Spec) -> bool:
    """vLLM shares tensors between workers through /dev/shm; `auto` on GPUs may pick vLLM."""
    backend = resolve_backend(spec)
    return backend == Backend.VLLM or (backend == Backend.AUTO and spec.resources.gpus > 0)
