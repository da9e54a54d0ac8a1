"""The runtime's `serve` command line for an LLMServer (docs/contracts.md).

The Deployment builder and the local/Mac runners both turn an LLMServer into the same argument
list, so it lives here, free of Kubernetes types. Which CRD field becomes which flag is declared
once, in `llmserver_api.engine_flags`; this module adds only the operator's GPU defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import llmserver_api
from llmserver_api import engine_flags

Backend = llmserver_api.Backend
Spec = llmserver_api.LLMServerSpec

# Flags the operator fills from spec.resources.gpus when the config block leaves them unset:
# llama-cpp offloads every layer, vLLM shards over the replica's GPUs.
GPU_DEFAULTS: dict[str, Callable[[int], int]] = {
    "n_gpu_layers": lambda gpus: -1,
    "tensor_parallel_size": lambda gpus: gpus,
}


def engine_flag_args(spec: Spec, backend: Backend) -> list[str]:
    """The flags of one engine's config block, with the GPU defaults where the block sets none."""
    gpus = spec.resources.gpus
    out: list[str] = []
    for flag, value in engine_flags.from_crd(spec, backend):
        if value is None and gpus > 0 and flag.name in GPU_DEFAULTS:
            value = GPU_DEFAULTS[flag.name](gpus)
        out += flag.argv(value)
    return out


def auto_args(spec: Spec) -> list[str]:
    """With `auto`, every config block the user wrote is passed on; the runtime uses its engine's."""
    out: list[str] = []
    for engine in engine_flags.ENGINES:
        if getattr(spec, engine_flags.config_attr(engine)) is not None:
            out += engine_flag_args(spec, engine)
    return out


def backend_args(spec: Spec) -> list[str]:
    """The engine flags of spec.backend (for `auto`: of every block written)."""
    return auto_args(spec) if spec.backend == Backend.AUTO else engine_flag_args(spec, spec.backend)


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


def serve_args(spec: Spec, model_path: str, port: int, host: str = "0.0.0.0",
               adapters: Sequence[tuple[str, str]] = (), engine_extra: Sequence[str] = ()) -> list[str]:
    """Arguments after `llmserver-runtime`: `serve ...` with the backend's flags, `--adapter
    NAME=PATH` for each of `adapters` (loaded at start), then after `--` the engine flags the
    operator adds (`engine_extra`) and spec.extraArgs (last, so the user's win).

    `spec.backend` is used as written (`auto` included): the reconciler resolves `auto` first
    (llmserver_operator.resolution) where it can, and the runtime decides the rest at start.
    """
    args = [
        "serve",
        "--backend", spec.backend.value,
        "--model", model_path,
        "--served-model-name", spec.model,
        "--host", host,
        "--port", str(port),
    ]
    if spec.capabilities:
        args += ["--capabilities", ",".join(capability.value for capability in spec.capabilities)]
    if spec.trust_remote_code:
        args.append("--trust-remote-code")
    args += backend_args(spec)
    for name, path in adapters:
        args += ["--adapter", f"{name}={path}"]
    extra = [*engine_extra, *spec.extra_args]
    if extra:
        args += ["--", *extra]
    return args


def needs_shm(spec: Spec) -> bool:
    """vLLM shares tensors between workers through /dev/shm; `auto` on GPUs may pick vLLM."""
    return spec.backend == Backend.VLLM or (spec.backend == Backend.AUTO and spec.resources.gpus > 0)
