"""`serve` settings: every flag also comes from env `LLMSERVER_<FLAG>` (flags win over env).

Read once in the entrypoint (cli.py) and passed to the app factory; nothing reads env later."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
import pydantic_settings
import llmserver_api
from llmserver_api import engine_flags
from llmserver_backends import base

from llmserver_runtime.server import adapters as adapters_mod

# The engine flags' names, keyed as in BackendConfig.options (declared in llmserver_api.engine_flags).
ENGINE_OPTIONS: tuple[str, ...] = tuple(engine_flags.EngineFlags.model_fields)


class ServeSettings(pydantic_settings.BaseSettings, engine_flags.EngineFlags):
    """Everything `llmserver-runtime serve` needs; see docs/contracts.md for the command line.

    The engine flags (n_ctx, dtype, ...) are inherited from `engine_flags.EngineFlags`, their one
    declaration, as llama-cpp-python's server settings inherit its model settings.
    """

    model_config = pydantic_settings.SettingsConfigDict(env_prefix=engine_flags.ENV_PREFIX, extra="ignore")

    backend: str = pydantic.Field(description="llama-cpp, transformers, vllm, mlx, mlx-vlm, auto or fake.")
    model: str = pydantic.Field(description="Local model path (file or directory).")
    served_model_name: str = pydantic.Field(min_length=1, description="Name clients send as `model`.")
    host: str = pydantic.Field(default="0.0.0.0", description="Listen address.")
    port: int = pydantic.Field(default=8080, ge=0, le=65535, description="Listen port.")
    capabilities: str | None = pydantic.Field(
        default=None, description="Comma list of TextGeneration,Embeddings,Vision,Rerank; unset: detect."
    )
    trust_remote_code: bool = pydantic.Field(default=False, description="Let the model repo run its own code.")
    max_concurrency: int | None = pydantic.Field(
        default=None, ge=1, description="Requests running at once; unset: what the backend allows."
    )
    max_queue: int = pydantic.Field(default=64, ge=0, description="Requests waiting beyond that; more get 429.")
    request_timeout: float = pydantic.Field(default=600.0, gt=0, description="Seconds a request may take in all.")
    extra_args: list[str] = pydantic.Field(default_factory=list, description="Engine args after `--`.")
    api_key: pydantic.SecretStr | None = pydantic.Field(
        default=None, description="If set, /v1/* requires `Authorization: Bearer <key>` (env only)."
    )
    allow_remote_images: bool = pydantic.Field(
        default=False, description="Fetch http(s) image_url parts; off by default (SSRF), data: URLs always work."
    )
    max_image_bytes: int = pydantic.Field(default=20 * 1024 * 1024, ge=1, description="Largest image accepted.")
    remote_image_timeout: float = pydantic.Field(default=10.0, gt=0, description="Seconds to fetch one image.")
    log_level: str = pydantic.Field(default="info", description="Python/uvicorn log level.")
    # NoDecode: env LLMSERVER_ADAPTERS is `NAME=PATH,NAME=PATH`, not JSON.
    adapters: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list, description="LoRA adapters NAME=PATH, each served as `<served-model-name>:NAME`."
    )
    adapter_root: str | None = pydantic.Field(
        default=None,
        description="Directory tree /v1/load_lora_adapter may load from (default: the model cache, /models, or "
        "the model's own directory).",
    )

    @pydantic.model_validator(mode="after")
    def _exclusive_quantisation(self) -> ServeSettings:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are mutually exclusive")
        return self

    @pydantic.field_validator("adapters", mode="before")
    @classmethod
    def _split_adapters(cls, value: Any) -> Any:
        return adapters_mod.split_env(value) if isinstance(value, str) else value

    @pydantic.field_validator("adapters")
    @classmethod
    def _valid_adapters(cls, value: list[str]) -> list[str]:
        adapters_mod.parse_specs(value)
        return value

    def adapter_paths(self) -> dict[str, str]:
        """--adapter NAME=PATH as {name: path}, in the order given."""
        return adapters_mod.parse_specs(self.adapters)

    @pydantic.field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: str | None) -> str | None:
        if value is not None:
            parse_capabilities(value)
        return value

    def capability_set(self) -> frozenset[llmserver_api.Capability] | None:
        """The --capabilities flag as a set; None means: let the backend detect them."""
        return parse_capabilities(self.capabilities) if self.capabilities else None

    def engine_options(self) -> dict[str, Any]:
        """The engine flags that were given, keyed by their snake_case name."""
        return {name: getattr(self, name) for name in ENGINE_OPTIONS if getattr(self, name) is not None}

    def backend_config(self) -> base.BackendConfig:
        """What the backend gets to load the model."""
        return base.BackendConfig(
            model_path=self.model,
            served_model_name=self.served_model_name,
            options=self.engine_options(),
            capabilities=self.capability_set(),
            trust_remote_code=self.trust_remote_code,
            extra_args=tuple(self.extra_args),
            adapters=self.adapter_paths(),
        )


def parse_capabilities(value: str) -> frozenset[llmserver_api.Capability]:
    """'TextGeneration,Embeddings' -> the set; an unknown name is a ValueError listing the known ones."""
    known = {c.value.lower(): c for c in llmserver_api.Capability}
    result: set[llmserver_api.Capability] = set()
    for item in value.split(","):
        name = item.strip()
        if not name:
            continue
        if name.lower() not in known:
            known_names = ", ".join(c.value for c in llmserver_api.Capability)
            raise ValueError(f"unknown capability {name!r}; known: {known_names}")
        result.add(known[name.lower()])
    if not result:
        raise ValueError("capabilities must name at least one capability")
    return frozenset(result)
