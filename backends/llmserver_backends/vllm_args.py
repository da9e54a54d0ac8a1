"""LLMServer's vLLM settings as vLLM command-line flags, parsed by vLLM's own argument parser.

Why flags and not keyword arguments: the same flags are what `vllm serve` takes, vLLM validates
them (choices, ranges, unknown names) with the parser it ships, and `spec.extraArgs` are flags too.
Building one argv and parsing it with `AsyncEngineArgs.add_cli_args` means a GPU deployment gets
exactly the flags the CPU tests proved vLLM accepts, and a typo in extraArgs is a clear load error
instead of a silently ignored option.

`engine_argv` is pure (no vLLM import), so the mapping is testable anywhere; `parse` imports vLLM.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from llmserver_backends import base, vllm_lora

if TYPE_CHECKING:  # pragma: no cover - typing only
    from vllm.engine.arg_utils import AsyncEngineArgs

# BackendConfig.options key -> vLLM flag. Values None mean "leave vLLM's default".
OPTION_FLAGS: dict[str, str] = {
    "tensor_parallel_size": "--tensor-parallel-size",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_model_len": "--max-model-len",
    "dtype": "--dtype",
}


class VllmArgsError(base.BackendError):
    """vLLM's parser refused the flags (a bad value or an unknown extraArgs flag)."""


def visible_gpu_count(environ: dict[str, str] | None = None) -> int:
    """GPUs this process may use, without initialising CUDA.

    CUDA_VISIBLE_DEVICES (set by the NVIDIA device plugin in Kubernetes) is authoritative when set;
    otherwise ask torch, which vLLM already imports. Returns 0 on CPU-only machines.
    """
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import torch
    except ImportError:  # pragma: no cover - vLLM always brings torch
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _flag_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def engine_argv(config: base.BackendConfig, gpu_count: int) -> list[str]:
    """The vLLM engine flags for `config`.

    tensor_parallel_size defaults to the visible GPU count (at least 1) so one replica uses all
    the GPUs its pod requested. extraArgs come last: argparse keeps the last occurrence, so an
    operator's extraArgs can override a typed field deliberately, exactly as on `vllm serve`.
    """
    options = dict(config.options)
    if options.get("tensor_parallel_size") is None:
        options["tensor_parallel_size"] = max(gpu_count, 1)
    argv = ["--model", config.model_path, "--served-model-name", config.served_model_name]
    for key, flag in OPTION_FLAGS.items():
        value = options.get(key)
        if value is not None:
            argv += [flag, _flag_value(value)]
    # Safe by default: a model repository runs its own code only when the LLMServer opts in.
    if config.trust_remote_code:
        argv.append("--trust-remote-code")
    # Structured outputs by xgrammar (as transformers and mlx here) without free whitespace between
    # JSON tokens (engine-wide in vLLM): constrained JSON closes instead of idling in blanks.
    argv += ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
    # LoRA on when adapters come with the model (vllm_lora); extraArgs may override its sizing.
    argv += vllm_lora.lora_argv(config.adapters)
    argv += list(config.extra_args)
    return argv


def _raising_parser() -> Any:
    """vLLM's FlexibleArgumentParser, raising instead of exiting the process on bad flags."""
    from vllm.engine import arg_utils
    from vllm.utils import argparse_utils

    class RaisingParser(argparse_utils.FlexibleArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise VllmArgsError(f"vLLM rejected the engine arguments: {message}")

    parser = RaisingParser(prog="llmserver-runtime serve --backend vllm", add_help=False)
    return arg_utils.AsyncEngineArgs.add_cli_args(parser)


def parse(argv: Sequence[str]) -> AsyncEngineArgs:
    """Parses `argv` with vLLM's own parser into the AsyncEngineArgs the engine is built from."""
    from vllm.engine import arg_utils

    namespace = _raising_parser().parse_args(list(argv))
    return arg_utils.AsyncEngineArgs.from_cli_args(namespace)


def engine_args(config: base.BackendConfig, gpu_count: int | None = None) -> AsyncEngineArgs:
    """AsyncEngineArgs for `config`; counts visible GPUs when `gpu_count` is not given."""
    count = visible_gpu_count() if gpu_count is None else gpu_count
    return parse(engine_argv(config, count))
