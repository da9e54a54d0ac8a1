"""The engine flags of `llmserver-runtime serve`, declared once.

Each field of `EngineFlags` is one flag. Its name gives the option (`n_gpu_layers` ->
`--n-gpu-layers`) and the env name (`LLMSERVER_N_GPU_LAYERS`), its type and constraints how the
value parses, its description the help text, and its `FlagSource` the engines that take it and the
field of their CRD config block (`spec.llamaCpp.nGpuLayers`) it is set from. Everything else is
derived from here: the runtime's settings inherit the model and generate their click options
from it, the operator maps the CRD to argv with `from_crd`, and docs/contracts.md's synopsis is
checked against `synopsis_lines`. It lives in the API package because the operator and the
runtime both read it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any

import pydantic

from llmserver_api import common, llmserver

Backend = llmserver.Backend
ENV_PREFIX = "LLMSERVER_"
# The engines with a config block in the CRD; `auto` has none (it passes on the blocks written).
ENGINES: tuple[Backend, ...] = tuple(backend for backend in Backend if backend is not Backend.AUTO)
_METAVARS: dict[type, str] = {int: "N", float: "F", str: "TEXT"}


@dataclasses.dataclass(frozen=True)
class FlagSource:
    """Where a flag applies: the engines that take it and the field of their CRD config block.

    `crd_field` is the Python name of the field in each engine's block (the block of engine `e` is
    `spec.<e with _ for ->`); None declares a flag as CLI-only, set by no CRD field.
    """

    engines: tuple[Backend, ...]
    crd_field: str | None
    metavar: str | None = None


def _source(*engines: Backend, crd_field: str | None, metavar: str | None = None) -> FlagSource:
    return FlagSource(engines=engines, crd_field=crd_field, metavar=metavar)


_LLAMA = Backend.LLAMA_CPP
_VLLM = Backend.VLLM
_HF = Backend.TRANSFORMERS
_MLX = Backend.MLX
_MLX_VLM = Backend.MLX_VLM


class EngineFlags(pydantic.BaseModel):
    """The typed engine options of `serve`; unset (None) means: the engine's own default."""

    n_gpu_layers: Annotated[int | None, _source(_LLAMA, crd_field="n_gpu_layers")] = pydantic.Field(
        default=None, description="Layers offloaded to GPU (-1: all)."
    )
    n_ctx: Annotated[int | None, _source(_LLAMA, crd_field="n_ctx")] = pydantic.Field(
        default=None, ge=0, description="Context size in tokens (0: the model's)."
    )
    n_batch: Annotated[int | None, _source(_LLAMA, crd_field="n_batch")] = pydantic.Field(
        default=None, ge=1, description="Prompt processing batch size."
    )
    n_threads: Annotated[int | None, _source(_LLAMA, crd_field="n_threads")] = pydantic.Field(
        default=None, ge=1, description="CPU threads for generation."
    )
    parallel: Annotated[int | None, _source(_LLAMA, crd_field="parallel")] = pydantic.Field(
        default=None, ge=1, le=256, description="Sequences decoded together (continuous batching slots)."
    )
    tensor_parallel_size: Annotated[int | None, _source(_VLLM, crd_field="tensor_parallel_size")] = pydantic.Field(
        default=None, ge=1, description="GPUs one replica shards over."
    )
    gpu_memory_utilization: Annotated[float | None, _source(_VLLM, crd_field="gpu_memory_utilization")] = (
        pydantic.Field(default=None, gt=0, le=1, description="Fraction of GPU memory to use (0-1].")
    )
    max_model_len: Annotated[int | None, _source(_VLLM, crd_field="max_model_len")] = pydantic.Field(
        default=None, ge=1, description="Context length in tokens."
    )
    dtype: Annotated[str | None, _source(_VLLM, _HF, crd_field="dtype", metavar="DTYPE")] = pydantic.Field(
        default=None, description="Weight dtype."
    )
    load_in_4bit: Annotated[bool | None, _source(_HF, crd_field="load_in_4bit")] = pydantic.Field(
        default=None, description="Quantise weights to 4 bit with bitsandbytes."
    )
    load_in_8bit: Annotated[bool | None, _source(_HF, crd_field="load_in_8bit")] = pydantic.Field(
        default=None, description="Quantise weights to 8 bit with bitsandbytes."
    )
    max_batch_size: Annotated[int | None, _source(_HF, crd_field="max_batch_size")] = pydantic.Field(
        default=None, ge=1, le=256, description="Requests decoded together in one forward pass."
    )
    max_kv_size: Annotated[int | None, _source(_MLX, _MLX_VLM, crd_field="max_kv_size")] = pydantic.Field(
        default=None, ge=1, description="Rotating KV cache size in tokens."
    )
    max_tokens: Annotated[int | None, _source(_MLX_VLM, crd_field="max_tokens")] = pydantic.Field(
        default=None, ge=1, description="Default completion length when a request sets none."
    )


@dataclasses.dataclass(frozen=True)
class Flag:
    """One engine flag as the CLI, env, operator and docs see it."""

    name: str
    value_type: type
    description: str
    engines: tuple[Backend, ...]
    crd_field: str | None
    metavar: str

    @property
    def option(self) -> str:
        """The `serve` option, e.g. `--n-gpu-layers`."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The env variable the runtime also reads it from, e.g. `LLMSERVER_N_GPU_LAYERS`."""
        return ENV_PREFIX + self.name.upper()

    @property
    def is_switch(self) -> bool:
        """A boolean flag is given without a value (`--load-in-4bit`)."""
        return self.value_type is bool

    @property
    def help(self) -> str:
        """Help text naming the engines, e.g. `CPU threads for generation. [llama-cpp]`"""
        return f"{self.description} [{', '.join(engine.value for engine in self.engines)}]"

    def argv(self, value: Any) -> list[str]:
        """The words that pass `value` on the command line; nothing for None or a false switch."""
        if value is None or value is False:
            return []
        return [self.option] if self.is_switch else [self.option, str(value)]


def _value_type(annotation: Any) -> type:
    """`int | None` -> int: the type the flag's value parses to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return typing.cast(type, inner)
    return typing.cast(type, annotation)


def flags() -> tuple[Flag, ...]:
    """Every engine flag, in declaration order."""
    found: list[Flag] = []
    for name, field in EngineFlags.model_fields.items():
        (source,) = [item for item in field.metadata if isinstance(item, FlagSource)]
        value_type = _value_type(field.annotation)
        found.append(
            Flag(
                name=name,
                value_type=value_type,
                description=field.description or "",
                engines=source.engines,
                crd_field=source.crd_field,
                metavar=source.metavar or _METAVARS.get(value_type, ""),
            )
        )
    return tuple(found)


def for_engine(backend: Backend) -> tuple[Flag, ...]:
    """The flags `backend` takes, in the order of its CRD config block; CLI-only flags last."""
    block_fields = list(config_class(backend).model_fields)

    def position(flag: Flag) -> int:
        return block_fields.index(flag.crd_field) if flag.crd_field in block_fields else len(block_fields)

    return tuple(sorted((flag for flag in flags() if backend in flag.engines), key=position))


def config_attr(backend: Backend) -> str:
    """The LLMServerSpec field holding `backend`'s config block (`llama-cpp` -> `llama_cpp`)."""
    return backend.value.replace("-", "_")


def config_class(backend: Backend) -> type[common.ApiModel]:
    """The CRD model of `backend`'s config block (LlamaCppConfig, ...)."""
    annotation = llmserver.LLMServerSpec.model_fields[config_attr(backend)].annotation
    return typing.cast("type[common.ApiModel]", _value_type(annotation))


def from_crd(spec: llmserver.LLMServerSpec, backend: Backend) -> list[tuple[Flag, Any]]:
    """Each CRD-set flag of `backend` with the value its config block gives, in the block's order.

    A field left at its CRD default (unset, `false`, dtype `auto`) gives None: the flag is then
    omitted and the engine's own default applies.
    """
    block_class = config_class(backend)
    block = getattr(spec, config_attr(backend)) or block_class()
    pairs: list[tuple[Flag, Any]] = []
    for flag in for_engine(backend):
        if flag.crd_field is None:
            continue
        value = getattr(block, flag.crd_field)
        pairs.append((flag, None if value == block_class.model_fields[flag.crd_field].default else value))
    return pairs


def _synopsis_word(flag: Flag) -> str:
    return f"[{flag.option}]" if flag.is_switch else f"[{flag.option} {flag.metavar}]"


def synopsis_lines() -> list[str]:
    """The engine-flag lines of docs/contracts.md's `serve` synopsis, one per engine."""
    bodies = [" ".join(_synopsis_word(flag) for flag in for_engine(engine)) for engine in ENGINES]
    width = max(len(body) for body in bodies)
    return [f"    {body:<{width}}  # {engine.value}" for body, engine in zip(bodies, ENGINES, strict=True)]
