"""`/v1/embeddings` request and response models."""

from __future__ import annotations

from typing import Literal

import pydantic

from llmserver_api.protocol import common


class EmbeddingRequest(pydantic.BaseModel):
    """A batch of texts to embed."""

    model_config = common.REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    input: str | list[str] | list[int] | list[list[int]] = pydantic.Field(
        description="Text or list of texts (token-id input is refused)."
    )
    encoding_format: Literal["float", "base64"] = pydantic.Field(
        default="float", description="float: JSON numbers; base64: little-endian float32 bytes."
    )
    dimensions: int | None = pydantic.Field(default=None, ge=1, description="Must equal the model's size if set.")


class Embedding(pydantic.BaseModel):
    """One vector."""

    object: Literal["embedding"] = pydantic.Field(default="embedding", description="Object type.")
    index: int = pydantic.Field(description="Position of the input.")
    embedding: list[float] | str = pydantic.Field(description="Vector, or base64 float32 bytes.")


class EmbeddingUsage(pydantic.BaseModel):
    """Embedding usage: only prompt tokens."""

    prompt_tokens: int = pydantic.Field(description="Tokens embedded.")
    total_tokens: int = pydantic.Field(description="Equals prompt_tokens.")


class EmbeddingResponse(pydantic.BaseModel):
    """The embeddings in input order."""

    object: Literal["list"] = pydantic.Field(default="list", description="Object type.")
    data: list[Embedding] = pydantic.Field(description="One entry per input.")
    model: str = pydantic.Field(description="Served model name.")
    usage: EmbeddingUsage = pydantic.Field(description="Token usage.")
