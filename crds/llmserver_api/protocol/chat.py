"""`/v1/chat/completions` request and response models (OpenAI wire format)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from llmserver_api.protocol import common, tools


class ImageURL(pydantic.BaseModel):
    """An image reference: a `data:` URL (base64) or, where the server allows it, http(s)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    url: str = pydantic.Field(description="data:image/...;base64,... or an http(s) URL.")
    detail: Literal["auto", "low", "high"] | None = pydantic.Field(default=None, description="Ignored hint.")


class TextPart(pydantic.BaseModel):
    """A text content part."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["text"] = pydantic.Field(description="Always 'text'.")
    text: str = pydantic.Field(description="The text.")


class ImagePart(pydantic.BaseModel):
    """An image content part; needs the Vision capability."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["image_url"] = pydantic.Field(description="Always 'image_url'.")
    image_url: ImageURL = pydantic.Field(description="The image.")


ContentPart = Annotated[TextPart | ImagePart, pydantic.Field(discriminator="type")]


class Message(pydantic.BaseModel):
    """One chat message."""

    model_config = common.GENERATION_REQUEST_CONFIG

    role: Literal["system", "developer", "user", "assistant", "tool"] = pydantic.Field(description="Author role.")
    content: str | list[ContentPart] | None = pydantic.Field(default=None, description="Text or content parts.")
    name: str | None = pydantic.Field(default=None, description="Optional participant name.")
    refusal: str | None = pydantic.Field(default=None, description="An earlier assistant refusal (kept as sent).")
    tool_calls: list[tools.ToolCall] | None = pydantic.Field(default=None, description="An assistant turn's calls.")
    tool_call_id: str | None = pydantic.Field(default=None, description="A tool message: the call it answers.")


class ChatCompletionRequest(common.SamplingFields):
    """OpenAI's chat request. Every field OpenAI defines is declared: those that change what is
    generated are honoured by the serving engine or refused with a 400 naming them
    (`generation_options`); the rest (`user`, `metadata`, ...) do not change output and are
    accepted. A field OpenAI does not define is refused too (see `common.unknown_fields`)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    messages: list[Message] = pydantic.Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = pydantic.Field(default=None, ge=1, description="Cap on generated tokens.")
    max_completion_tokens: int | None = pydantic.Field(
        default=None, ge=1, description="Newer name for max_tokens; wins when both are set."
    )
    temperature: float | None = pydantic.Field(default=None, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float | None = pydantic.Field(
        default=None, ge=0.0, le=1.0, description="Nucleus sampling mass (0: only the likeliest token, i.e. greedy)."
    )
    stop: common.StopSequences = pydantic.Field(default=None, description="Up to 16 stop strings.")
    n: int = pydantic.Field(default=1, ge=1, le=16, description="Number of choices to generate.")
    stream: bool = pydantic.Field(default=False, description="Stream chunks as server-sent events.")
    stream_options: common.StreamOptions | None = pydantic.Field(default=None, description="Streaming options.")
    logprobs: bool | None = pydantic.Field(default=None, description="Return the log probability of each token.")
    top_logprobs: int | None = pydantic.Field(
        default=None, ge=0, le=20, description="Alternatives per token with their log probabilities (needs logprobs)."
    )
    response_format: dict[str, Any] | None = pydantic.Field(
        default=None, description="text, json_object or json_schema output."
    )
    tools: list[Any] | None = pydantic.Field(default=None, description="Functions the model may call.")
    tool_choice: str | dict[str, Any] | None = pydantic.Field(
        default=None, description="none, auto, required or one tool."
    )
    parallel_tool_calls: bool | None = pydantic.Field(default=None, description="Allow several tool calls per turn.")
    functions: list[Any] | None = pydantic.Field(default=None, description="Deprecated form of tools.")
    function_call: str | dict[str, Any] | None = pydantic.Field(default=None, description="Deprecated tool_choice.")
    modalities: list[str] | None = pydantic.Field(default=None, description="Output modalities; only text here.")
    audio: dict[str, Any] | None = pydantic.Field(default=None, description="Audio output parameters.")
    prediction: dict[str, Any] | None = pydantic.Field(default=None, description="Predicted output content.")
    reasoning_effort: str | None = pydantic.Field(default=None, description="Reasoning models' effort.")
    verbosity: str | None = pydantic.Field(default=None, description="Reasoning models' answer length.")
    web_search_options: dict[str, Any] | None = pydantic.Field(default=None, description="Web search tool.")
    moderation: dict[str, Any] | None = pydantic.Field(
        default=None, description="Moderation of input and output (no engine runs one here: refused when set)."
    )
    # Accepted; they do not change what is generated.
    user: str | None = pydantic.Field(default=None, description="End-user id (accepted, not used).")
    metadata: dict[str, str] | None = pydantic.Field(default=None, description="Stored-completion tags (accepted).")
    store: bool | None = pydantic.Field(default=None, description="Store the completion (accepted, nothing stored).")
    service_tier: str | None = pydantic.Field(default=None, description="Processing tier (accepted; one tier here).")
    prompt_cache_key: str | None = pydantic.Field(default=None, description="Cache routing hint (accepted).")
    safety_identifier: str | None = pydantic.Field(default=None, description="End-user id for abuse checks.")
    prompt_cache_options: dict[str, Any] | None = pydantic.Field(
        default=None, description="Provider prompt-cache settings (accepted; this server keeps no prompt cache)."
    )
    prompt_cache_retention: str | None = pydantic.Field(
        default=None, description="Deprecated prompt-cache retention (accepted; nothing is cached)."
    )

    @pydantic.field_validator("n", "stream", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        return common.null_is_default(cls, value, info)

    @pydantic.field_validator("stop")
    @classmethod
    def _few_stops(cls, value: common.StopSequences) -> common.StopSequences:
        return common.check_stops(value)

    @property
    def effective_max_tokens(self) -> int | None:
        """max_completion_tokens if set, else max_tokens."""
        return self.max_completion_tokens or self.max_tokens

    def generation_options(self) -> dict[str, Any]:
        """Optional fields set to a value that changes what is generated, by name; the serving
        engine must honour each of them or the request is refused."""
        options = common.sampling_options(self)
        if self.logprobs:
            options["logprobs"] = True
            if self.top_logprobs:
                options["top_logprobs"] = self.top_logprobs
        if self.response_format is not None and self.response_format.get("type") != "text":
            options["response_format"] = self.response_format
        has_tools = bool(self.tools or self.functions)
        for name in ("tools", "functions"):
            if getattr(self, name):
                options[name] = getattr(self, name)
        for name in ("tool_choice", "function_call"):
            value = getattr(self, name)
            if value is not None and (has_tools or value not in ("none", "auto")):
                options[name] = value
        if has_tools and self.parallel_tool_calls is not None:
            options["parallel_tool_calls"] = self.parallel_tool_calls
        if self.modalities is not None and self.modalities != ["text"]:
            options["modalities"] = self.modalities
        for name in ("audio", "prediction", "reasoning_effort", "verbosity", "web_search_options", "moderation"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options


class TopLogprob(pydantic.BaseModel):
    """One candidate token with its log probability."""

    token: str = pydantic.Field(description="The token's text.")
    logprob: float = pydantic.Field(description="Natural log of its probability.")
    bytes: list[int] | None = pydantic.Field(
        description="The token's UTF-8 bytes (a token may hold part of a character)."
    )


class TokenLogprob(TopLogprob):
    """A generated token, its log probability and the likeliest alternatives at its position."""

    top_logprobs: list[TopLogprob] = pydantic.Field(description="Up to top_logprobs alternatives, likeliest first.")


class ChoiceLogprobs(pydantic.BaseModel):
    """A choice's log probabilities (OpenAI: content, refusal)."""

    content: list[TokenLogprob] | None = pydantic.Field(description="One entry per generated token.")
    refusal: list[TokenLogprob] | None = pydantic.Field(default=None, description="Always null here.")


class ResponseMessage(pydantic.BaseModel):
    """The assistant message of a non-streaming choice."""

    role: Literal["assistant"] = pydantic.Field(default="assistant", description="Always assistant.")
    content: str | None = pydantic.Field(description="Generated text.")
    refusal: str | None = pydantic.Field(default=None, description="Always null: refusals are plain content here.")
    tool_calls: list[tools.ToolCall] | None = pydantic.Field(default=None, description="Calls the model made.")

    @pydantic.model_serializer(mode="wrap")
    def _tool_calls_when_made(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        if dumped.get("tool_calls") is None:
            dumped.pop("tool_calls", None)  # OpenAI omits the key when no tool was called
        return dumped


class Choice(pydantic.BaseModel):
    """One non-streaming choice."""

    index: int = pydantic.Field(description="Choice index.")
    message: ResponseMessage = pydantic.Field(description="The generated message.")
    logprobs: ChoiceLogprobs | None = pydantic.Field(default=None, description="Set when the request asked.")
    finish_reason: str | None = pydantic.Field(description="stop or length.")


class ChatCompletion(pydantic.BaseModel):
    """A non-streaming chat response."""

    id: str = pydantic.Field(description="Response id (chatcmpl-...).")
    object: Literal["chat.completion"] = pydantic.Field(default="chat.completion", description="Object type.")
    created: int = pydantic.Field(description="Unix time.")
    model: str = pydantic.Field(description="Served model name.")
    service_tier: str | None = pydantic.Field(default="default", description="Always default here.")
    system_fingerprint: str = pydantic.Field(description="Identifies the engine and model behind the answer.")
    choices: list[Choice] = pydantic.Field(description="Choices in index order.")
    usage: common.Usage = pydantic.Field(description="Token usage.")


class ChunkDelta(pydantic.BaseModel):
    """What one stream chunk adds to a choice: only the fields it sets go on the wire (OpenAI
    sends `{"role": "assistant", "content": ""}` first, then `{"content": ...}`, and `{}` with the
    finish reason)."""

    role: Literal["assistant"] | None = pydantic.Field(default=None, description="Only on the first chunk.")
    content: str | None = pydantic.Field(default=None, description="New text.")
    tool_calls: list[tools.ChunkToolCall] | None = pydantic.Field(default=None, description="Tool-call pieces.")

    @pydantic.model_serializer(mode="wrap")
    def _without_nulls(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChunkChoice(pydantic.BaseModel):
    """One choice inside a stream chunk (fields in OpenAI's order)."""

    index: int = pydantic.Field(description="Choice index.")
    delta: ChunkDelta = pydantic.Field(description="The increment.")
    logprobs: ChoiceLogprobs | None = pydantic.Field(default=None, description="This chunk's tokens, when asked.")
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
    service_tier: str | None = pydantic.Field(default="default", description="Always default here.")
    system_fingerprint: str = pydantic.Field(description="Same as the whole response's.")
    choices: list[ChunkChoice] = pydantic.Field(description="Empty on the usage chunk.")
    usage: common.Usage | None = pydantic.Field(default=None, description="Only on the last chunk, if asked.")
