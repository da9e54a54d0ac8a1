"""`/v1/chat/completions` request and response models (OpenAI wire format)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from llmserver_api.protocol import common


class ImageURL(pydantic.BaseModel):
    """An image reference: a `data:` URL (base64) or, where the server allows it, http(s)."""

    model_config = common.REQUEST_CONFIG

    url: str = pydantic.Field(description="data:image/...;base64,... or an http(s) URL.")
    detail: Literal["auto", "low", "high"] | None = pydantic.Field(default=None, description="Ignored hint.")


class TextPart(pydantic.BaseModel):
    """A text content part."""

    model_config = common.REQUEST_CONFIG

    type: Literal["text"] = pydantic.Field(description="Always 'text'.")
    text: str = pydantic.Field(description="The text.")


class ImagePart(pydantic.BaseModel):
    """An image content part; needs the Vision capability."""

    model_config = common.REQUEST_CONFIG

    type: Literal["image_url"] = pydantic.Field(description="Always 'image_url'.")
    image_url: ImageURL = pydantic.Field(description="The image.")


ContentPart = Annotated[TextPart | ImagePart, pydantic.Field(discriminator="type")]


class Message(pydantic.BaseModel):
    """One chat message."""

    model_config = common.REQUEST_CONFIG

    role: Literal["system", "developer", "user", "assistant", "tool"] = pydantic.Field(description="Author role.")
    content: str | list[ContentPart] | None = pydantic.Field(default=None, description="Text or content parts.")
    name: str | None = pydantic.Field(default=None, description="Optional participant name.")


class ChatCompletionRequest(pydantic.BaseModel):
    """The subset of OpenAI's chat request this server honours; semantic extras are refused."""

    model_config = common.REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    messages: list[Message] = pydantic.Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = pydantic.Field(default=None, ge=1, description="Cap on generated tokens.")
    max_completion_tokens: int | None = pydantic.Field(
        default=None, ge=1, description="Newer name for max_tokens; wins when both are set."
    )
    temperature: float | None = pydantic.Field(default=None, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float | None = pydantic.Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: common.StopSequences = pydantic.Field(default=None, description="Up to 16 stop strings.")
    seed: int | None = pydantic.Field(default=None, description="Seed for reproducible sampling.")
    n: int = pydantic.Field(default=1, ge=1, le=16, description="Number of choices to generate.")
    stream: bool = pydantic.Field(default=False, description="Stream chunks as server-sent events.")
    stream_options: common.StreamOptions | None = pydantic.Field(default=None, description="Streaming options.")
    logprobs: bool | None = pydantic.Field(default=None, description="Not supported; must be unset or false.")
    tools: list[Any] | None = pydantic.Field(default=None, description="Not supported; must be unset or empty.")

    @pydantic.field_validator("stop")
    @classmethod
    def _few_stops(cls, value: common.StopSequences) -> common.StopSequences:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences are allowed")
        return value

    @property
    def effective_max_tokens(self) -> int | None:
        """max_completion_tokens if set, else max_tokens."""
        return self.max_completion_tokens or self.max_tokens


class ResponseMessage(pydantic.BaseModel):
    """The assistant message of a non-streaming choice."""

    role: Literal["assistant"] = pydantic.Field(default="assistant", description="Always assistant.")
    content: str = pydantic.Field(description="Generated text.")


class Choice(pydantic.BaseModel):
    """One non-streaming choice."""

    index: int = pydantic.Field(description="Choice index.")
    message: ResponseMessage = pydantic.Field(description="The generated message.")
    finish_reason: str | None = pydantic.Field(description="stop or length.")
    logprobs: None = pydantic.Field(default=None, description="Always null.")


class ChatCompletion(pydantic.BaseModel):
    """A non-streaming chat response."""

    id: str = pydantic.Field(description="Response id (chatcmpl-...).")
    object: Literal["chat.completion"] = pydantic.Field(default="chat.completion", description="Object type.")
    created: int = pydantic.Field(description="Unix time.")
    model: str = pydantic.Field(description="Served model name.")
    choices: list[Choice] = pydantic.Field(description="Choices in index order.")
    usage: common.Usage = pydantic.Field(description="Token usage.")


class ChunkDelta(pydantic.BaseModel):
    """What one stream chunk adds to a choice: only the fields it sets go on the wire (OpenAI
    sends `{"role": "assistant", "content": ""}` first, then `{"content": ...}`, and `{}` with the
    finish reason)."""

    role: Literal["assistant"] | None = pydantic.Field(default=None, description="Only on the first chunk.")
    content: str | None = pydantic.Field(default=None, description="New text.")

    @pydantic.model_serializer(mode="wrap")
    def _without_nulls(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChunkChoice(pydantic.BaseModel):
    """One choice inside a stream chunk (fields in OpenAI's order)."""

    index: int = pydantic.Field(description="Choice index.")
    delta: ChunkDelta = pydantic.Field(description="The increment.")
    logprobs: None = pydantic.Field(default=None, description="Always null.")
    finish_reason: str | None = pydantic.Field(default=None, description="Set on the choice's last chunk.")


class ChatCompletionChunk(pydantic.BaseModel):
    """One streaming event. `llmserver_api.protocol.stream` serialises it (no `usage` key but on
    the usage chunk); the runtime's SSE templates are tested to write exactly that."""

    id: str = pydantic.Field(description="Same id on every chunk of a response.")
    object: Literal["chat.completion.chunk"] = pydantic.Field(
        default="chat.completion.chunk", description="Object type."
    )
    created: int = pydantic.Field(description="Unix time.")
    model: str = pydantic.Field(description="Served model name.")
    choices: list[ChunkChoice] = pydantic.Field(description="Empty on the usage chunk.")
    usage: common.Usage | None = pydantic.Field(default=None, description="Only on the last chunk, if asked.")
