"""`/v1/responses` request models (OpenAI's Responses API, the stateless subset).

The server answers a Responses request by translating it into a chat request
(`llmserver_runtime.server.routes.responses_translate`), so what chat honours or refuses holds here
too. Fields that have no chat counterpart and change what is generated (`previous_response_id`,
`conversation`, `prompt`, `background`, `include`, `top_logprobs`, ...) are refused by name;
output-neutral ones (`store`, `metadata`, `user`, ...) are accepted. Unknown fields are refused
like chat's (`common.unknown_fields`). The response objects are built as plain dicts by the route:
their shape is checked against OpenAI's published schema in the tests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from llmserver_api.protocol import common

MAX_INPUT_ITEMS = 2048  # bounded before anything is converted (house rule 13)


class InputText(pydantic.BaseModel):
    """A text part of an input message."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["input_text"] = pydantic.Field(description="Always 'input_text'.")
    text: str = pydantic.Field(description="The text.")


class InputImage(pydantic.BaseModel):
    """An image part; needs the Vision capability (uploaded files are not served here)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["input_image"] = pydantic.Field(description="Always 'input_image'.")
    image_url: str | None = pydantic.Field(default=None, description="data: URL or, where allowed, http(s).")
    detail: Literal["auto", "low", "high"] | None = pydantic.Field(default=None, description="Ignored hint.")
    file_id: str | None = pydantic.Field(default=None, description="Uploaded file id (not supported here).")


class OutputText(pydantic.BaseModel):
    """An earlier assistant answer's text, sent back as history."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["output_text"] = pydantic.Field(description="Always 'output_text'.")
    text: str = pydantic.Field(description="The text.")
    annotations: list[Any] | None = pydantic.Field(default=None, description="Kept as sent; not shown to the model.")
    logprobs: list[Any] | None = pydantic.Field(default=None, description="Kept as sent; not shown to the model.")


class Refusal(pydantic.BaseModel):
    """An earlier assistant refusal, sent back as history."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["refusal"] = pydantic.Field(description="Always 'refusal'.")
    refusal: str = pydantic.Field(description="The refusal text.")


ContentPart = Annotated[InputText | InputImage | OutputText | Refusal, pydantic.Field(discriminator="type")]


class MessageItem(pydantic.BaseModel):
    """A message of the conversation (`type` may be left out, as in OpenAI's easy input form)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["message"] = pydantic.Field(default="message", description="Always 'message'.")
    role: Literal["user", "assistant", "system", "developer"] = pydantic.Field(description="Author role.")
    content: str | list[ContentPart] = pydantic.Field(description="Text or content parts.")
    id: str | None = pydantic.Field(default=None, description="An earlier output item's id (kept as sent).")
    status: str | None = pydantic.Field(default=None, description="An earlier output item's status.")


class FunctionCallItem(pydantic.BaseModel):
    """An earlier function call of the model, sent back as history."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["function_call"] = pydantic.Field(description="Always 'function_call'.")
    call_id: str = pydantic.Field(description="The call's id, answered by a function_call_output.")
    name: str = pydantic.Field(description="The function called.")
    arguments: str = pydantic.Field(description="Its arguments as a JSON string.")
    id: str | None = pydantic.Field(default=None, description="The output item's id (kept as sent).")
    status: str | None = pydantic.Field(default=None, description="The output item's status.")


class FunctionCallOutputItem(pydantic.BaseModel):
    """What the client's function returned for a call."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["function_call_output"] = pydantic.Field(description="Always 'function_call_output'.")
    call_id: str = pydantic.Field(description="The call answered.")
    output: str | list[InputText] = pydantic.Field(description="The function's result.")
    id: str | None = pydantic.Field(default=None, description="The item's id (kept as sent).")
    status: str | None = pydantic.Field(default=None, description="The item's status.")


def _item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return kind if kind in ("message", "function_call", "function_call_output") else "unsupported"


class UnsupportedItem(pydantic.BaseModel):
    """Any other item type (reasoning, item_reference, hosted tool calls): refused by the route."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: str = pydantic.Field(description="The item's type.")


InputItem = Annotated[
    Annotated[MessageItem, pydantic.Tag("message")]
    | Annotated[FunctionCallItem, pydantic.Tag("function_call")]
    | Annotated[FunctionCallOutputItem, pydantic.Tag("function_call_output")]
    | Annotated[UnsupportedItem, pydantic.Tag("unsupported")],
    pydantic.Discriminator(_item_type),
]


class FunctionTool(pydantic.BaseModel):
    """A function the model may call, in the Responses shape (no nested `function` object)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: str = pydantic.Field(description="'function'; hosted tools (web_search, ...) are refused.")
    name: str | None = pydantic.Field(default=None, description="The function's name.")
    description: str | None = pydantic.Field(default=None, description="What it does (shown to the model).")
    parameters: dict[str, Any] | None = pydantic.Field(default=None, description="JSON schema of its arguments.")
    strict: bool | None = pydantic.Field(default=None, description="Follow the schema exactly.")


class TextFormat(pydantic.BaseModel):
    """`text.format`: text, any JSON object, or JSON following a schema (flat, unlike chat's)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["text", "json_object", "json_schema"] = pydantic.Field(description="The output's kind.")
    name: str | None = pydantic.Field(default=None, description="The schema's name (json_schema).")
    description: str | None = pydantic.Field(default=None, description="What the answer is for.")
    schema_: dict[str, Any] | None = pydantic.Field(default=None, alias="schema", description="The JSON schema.")
    strict: bool | None = pydantic.Field(default=None, description="Follow the schema exactly.")


class TextOptions(pydantic.BaseModel):
    """`text`: the answer's format and verbosity."""

    model_config = common.GENERATION_REQUEST_CONFIG

    format: TextFormat | None = pydantic.Field(default=None, description="The answer's format.")
    verbosity: str | None = pydantic.Field(default=None, description="Answer length hint (reasoning models).")


class ReasoningOptions(pydantic.BaseModel):
    """`reasoning` (reasoning models only)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    effort: str | None = pydantic.Field(default=None, description="Reasoning effort.")
    summary: str | None = pydantic.Field(default=None, description="Reasoning summary kind.")
    generate_summary: str | None = pydantic.Field(default=None, description="Deprecated summary.")


class ResponsesRequest(pydantic.BaseModel):
    """OpenAI's `POST /v1/responses` body; see the module docstring for what is honoured."""

    model_config = common.GENERATION_REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    input: str | list[InputItem] = pydantic.Field(description="Text, or the conversation's items.")
    instructions: str | None = pydantic.Field(default=None, description="A system message put first.")
    max_output_tokens: int | None = pydantic.Field(default=None, ge=1, description="Cap on generated tokens.")
    temperature: float | None = pydantic.Field(default=None, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float | None = pydantic.Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    tools: list[FunctionTool] | None = pydantic.Field(default=None, description="Functions the model may call.")
    tool_choice: str | dict[str, Any] | None = pydantic.Field(default=None, description="none, auto, required, one.")
    parallel_tool_calls: bool | None = pydantic.Field(default=None, description="Several calls per turn allowed.")
    text: TextOptions | None = pydantic.Field(default=None, description="Output format.")
    stream: bool | None = pydantic.Field(default=False, description="Stream events as SSE.")
    stream_options: dict[str, Any] | None = pydantic.Field(default=None, description="include_obfuscation (accepted).")
    reasoning: ReasoningOptions | None = pydantic.Field(default=None, description="Reasoning models' options.")
    # Refused when set: nothing is stored, nothing runs in the background, no hosted prompts.
    previous_response_id: str | None = pydantic.Field(default=None, description="Needs stored responses.")
    conversation: str | dict[str, Any] | None = pydantic.Field(default=None, description="Needs stored conversations.")
    prompt: dict[str, Any] | None = pydantic.Field(default=None, description="A stored prompt template.")
    background: bool | None = pydantic.Field(default=None, description="Run in the background.")
    include: list[str] | None = pydantic.Field(default=None, description="Extra output to include.")
    top_logprobs: int | None = pydantic.Field(default=None, ge=0, le=20, description="Alternatives per token.")
    truncation: str | None = pydantic.Field(default=None, description="disabled (accepted) or auto.")
    max_tool_calls: int | None = pydantic.Field(default=None, description="Cap on built-in tool calls (none here).")
    moderation: dict[str, Any] | None = pydantic.Field(default=None, description="Moderation of input and output.")
    context_management: list[Any] | None = pydantic.Field(default=None, description="Context compaction.")
    # Accepted; they do not change what is generated.
    store: bool | None = pydantic.Field(default=None, description="Store the response (accepted, nothing stored).")
    metadata: dict[str, str] | None = pydantic.Field(default=None, description="Tags (echoed back).")
    user: str | None = pydantic.Field(default=None, description="End-user id (echoed back).")
    service_tier: str | None = pydantic.Field(default=None, description="Processing tier (one tier here).")
    prompt_cache_key: str | None = pydantic.Field(default=None, description="Cache routing hint.")
    prompt_cache_retention: str | None = pydantic.Field(default=None, description="Cache retention hint.")
    prompt_cache_options: dict[str, Any] | None = pydantic.Field(default=None, description="Cache options hint.")
    safety_identifier: str | None = pydantic.Field(default=None, description="End-user id for abuse checks.")

    @pydantic.field_validator("input", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        if isinstance(value, list) and len(value) > MAX_INPUT_ITEMS:
            raise ValueError(f"input may hold at most {MAX_INPUT_ITEMS} items")
        return value
