"""`/v1/models` response models."""

from __future__ import annotations

from typing import Literal

import pydantic


class Model(pydantic.BaseModel):
    """One served model."""

    id: str = pydantic.Field(description="The name clients send as `model`.")
    object: Literal["model"] = pydantic.Field(default="model", description="Object type.")
    created: int = pydantic.Field(description="Unix time the server loaded it.")
    owned_by: str = pydantic.Field(default="llmserver", description="Owner label.")
    capabilities: list[str] | None = pydantic.Field(
        default=None, description="Extension: TextGeneration, Embeddings, Vision, Rerank."
    )
    max_model_len: int | None = pydantic.Field(default=None, description="Extension: context length, if known.")
    # A LoRA adapter's entry (vLLM's shape): its base model as `parent` and `root`. Left out of the
    # JSON when None, so a base model's entry has neither.
    parent: str | None = pydantic.Field(
        default=None, exclude_if=lambda v: v is None, description="A LoRA adapter's base model."
    )
    root: str | None = pydantic.Field(
        default=None, exclude_if=lambda v: v is None, description="A LoRA adapter's base model."
    )


class ModelList(pydantic.BaseModel):
    """The models this endpoint serves."""

    object: Literal["list"] = pydantic.Field(default="list", description="Object type.")
    data: list[Model] = pydantic.Field(description="Models.")
