"""`/v1/completions` (legacy text completion) request and response models."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from llmserver_api.protocol import common


class CompletionRequest(common.SamplingFields):
    """OpenAI's completion request: one or a batch of string prompts. As for chat, fields that
    change generation are honoured or refused (`generation_options`); unknown fields are refused."""

    model_config = common.GENERATION_REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    prompt: str | list[str] | list[int] | list[list[int]] = pydantic.Field(
        description="Prompt text or a batch of prompts (token-id prompts are refused)."
    )
    max_tokens: int | None = pydantic.Field(default=16, ge=1, description="Cap on generated tokens (default 16).")
    temperature: float | None = pydantic.Field(default=None, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float | None = pydantic.Field(
        default=None, ge=0.0, le=1.0, description="Nucleus sampling mass (0: only the likeliest token, i.e. greedy)."
    )
    stop: common.StopSequences = pydantic.Field(default=None, description="Stop strings.")
    n: int = pydantic.Field(default=1, ge=1, le=16, description="Choices per prompt.")
    echo: bool = pydantic.Field(default=False, description="Prepend the prompt to each choice's text.")
    stream: bool = pydantic.Field(default=False, description="Stream chunks as server-sent events.")
    stream_options: common.StreamOptions | None = pydantic.Field(default=None, description="Streaming options.")
    logprobs: int | None = pydantic.Field(
        default=None, ge=0, le=5, description="Log probabilities of each token and of up to 5 alternatives."
    )
    suffix: str | None = pydantic.Field(default=None, description="Text after the completion (fill-in-the-middle).")
    best_of: int | None = pydantic.Field(default=None, ge=1, le=16, description="Candidates per choice (== n only).")
    user: str | None = pydantic.Field(default=None, description="End-user id (accepted, not used).")

    @pydantic.field_validator("n", "echo", "stream", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        return common.null_is_default(cls, value, info)

    @pydantic.field_validator("stop")
    @classmethod
    def _few_stops(cls, value: common.StopSequences) -> common.StopSequences:
        return common.check_stops(value)

    def generation_options(self) -> dict[str, Any]:
        """Optional fields set to a value that changes what is generated, by name (see chat's)."""
        options = common.sampling_options(self)
        if self.logprobs is not None:
            options["logprobs"] = self.logprobs
        if self.suffix:
            options["suffix"] = self.suffix
        if self.best_of is not None and self.best_of != self.n:
            options["best_of"] = self.best_of
        return options


class CompletionLogprobs(pydantic.BaseModel):
    """The legacy logprobs object: parallel lists, one entry per generated token."""

    tokens: list[str] = pydantic.Field(description="The generated tokens' texts.")
    token_logprobs: list[float | None] = pydantic.Field(description="Each token's log probability.")
    top_logprobs: list[dict[str, float] | None] = pydantic.Field(description="Likeliest alternatives per position.")
    text_offset: list[int] = pydantic.Field(description="Each token's character offset in the choice's text.")


class CompletionChoice(pydantic.BaseModel):
    """One completion choice (also the shape inside stream chunks)."""

    index: int = pydantic.Field(description="prompt_index * n + choice number.")
    text: str = pydantic.Field(description="Generated text (or its increment when streaming).")
    finish_reason: str | None = pydantic.Field(default=None, description="stop or length on the last piece.")
    logprobs: CompletionLogprobs | None = pydantic.Field(default=None, description="Set when the request asked.")


class Completion(pydantic.BaseModel):
    """A completion response or stream chunk (OpenAI uses one object type for both)."""

    id: str = pydantic.Field(description="Response id (cmpl-...).")
    object: Literal["text_completion"] = pydantic.Field(default="text_completion", description="Object type.")
    created: int = pydantic.Field(description="Unix time.")
    model: str = pydantic.Field(description="Served model name.")
    system_fingerprint: str = pydantic.Field(description="Identifies the engine and model behind the answer.")
    choices: list[CompletionChoice] = pydantic.Field(description="Choices.")
    usage: common.Usage | None = pydantic.Field(default=None, description="Usage (last chunk only when streaming).")
