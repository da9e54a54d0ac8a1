"""OpenAI's tool calling and structured-output shapes: what requests send (`tools`, `tool_choice`,
`response_format`, assistant `tool_calls`) and what responses and stream chunks carry back.

The chat request declares `tools`, `tool_choice` and `response_format` loosely (they are part of
the generation options every engine must honour or refuse); `parse_request_tools` turns them into
these models, so a malformed value is a 400 naming the field instead of a silent guess."""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic

from llmserver_api.protocol import common, errors

FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's rule for function names
MAX_TOOLS = 128  # OpenAI's limit on tools per request


class FunctionDefinition(pydantic.BaseModel):
    """A function the model may call; `parameters` is a JSON schema of its arguments object."""

    model_config = common.GENERATION_REQUEST_CONFIG

    name: str = pydantic.Field(pattern=FUNCTION_NAME, description="The function's name.")
    description: str | None = pydantic.Field(default=None, description="What it does (shown to the model).")
    parameters: dict[str, Any] | None = pydantic.Field(default=None, description="JSON schema of its arguments.")
    strict: bool | None = pydantic.Field(default=None, description="Follow the schema exactly (always done here).")


class Tool(pydantic.BaseModel):
    """One entry of `tools`."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["function"] = pydantic.Field(description="Always 'function'.")
    function: FunctionDefinition = pydantic.Field(description="The function.")


class FunctionName(pydantic.BaseModel):
    """The function a named tool_choice forces."""

    model_config = common.GENERATION_REQUEST_CONFIG

    name: str = pydantic.Field(description="One of the tools' names.")


class NamedToolChoice(pydantic.BaseModel):
    """`tool_choice: {"type": "function", "function": {"name": ...}}`."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["function"] = pydantic.Field(description="Always 'function'.")
    function: FunctionName = pydantic.Field(description="The function to call.")


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(pydantic.BaseModel):
    """`response_format.json_schema`: the schema the whole answer follows."""

    model_config = common.GENERATION_REQUEST_CONFIG

    name: str = pydantic.Field(pattern=FUNCTION_NAME, description="The schema's name.")
    description: str | None = pydantic.Field(default=None, description="What the answer is for.")
    schema_: dict[str, Any] | None = pydantic.Field(default=None, alias="schema", description="The JSON schema.")
    strict: bool | None = pydantic.Field(default=None, description="Follow it exactly (always done here).")


class ResponseFormat(pydantic.BaseModel):
    """`response_format`: text, any JSON object, or JSON following a schema."""

    model_config = common.GENERATION_REQUEST_CONFIG

    type: Literal["text", "json_object", "json_schema"] = pydantic.Field(description="The output's kind.")
    json_schema: JsonSchemaFormat | None = pydantic.Field(default=None, description="For type json_schema.")

    @pydantic.model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format.json_schema is required when type is json_schema")
        return self


class FunctionCall(pydantic.BaseModel):
    """A call's function and its arguments, a JSON object as a string (as OpenAI sends it)."""

    model_config = common.GENERATION_REQUEST_CONFIG

    name: str = pydantic.Field(description="The function called.")
    arguments: str = pydantic.Field(description="Arguments as a JSON string.")


class ToolCall(pydantic.BaseModel):
    """A tool call: in an assistant message of the history, and in a response message."""

    model_config = common.GENERATION_REQUEST_CONFIG

    id: str = pydantic.Field(description="call_..., echoed by the tool message answering it.")
    type: Literal["function"] = pydantic.Field(default="function", description="Always 'function'.")
    function: FunctionCall = pydantic.Field(description="What was called.")


class ChunkFunction(pydantic.BaseModel):
    """A streamed piece of a call's function: the name once, then argument fragments."""

    name: str | None = pydantic.Field(default=None, description="On the call's first chunk.")
    arguments: str | None = pydantic.Field(default=None, description="The next fragment of the arguments.")

    @pydantic.model_serializer(mode="wrap")
    def _without_nulls(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChunkToolCall(pydantic.BaseModel):
    """A streamed tool-call delta: `index` says which call; id and type come on its first chunk."""

    index: int = pydantic.Field(description="Which call of the message this piece belongs to.")
    id: str | None = pydantic.Field(default=None, description="On the call's first chunk.")
    type: Literal["function"] | None = pydantic.Field(default=None, description="On the call's first chunk.")
    function: ChunkFunction = pydantic.Field(description="Name and/or an arguments fragment.")

    @pydantic.model_serializer(mode="wrap")
    def _without_nulls(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class RequestTools(pydantic.BaseModel):
    """The chat request's tool and format fields, parsed."""

    tools: list[Tool] = pydantic.Field(default_factory=list, max_length=MAX_TOOLS, description="Callable functions.")
    tool_choice: ToolChoice | None = pydantic.Field(default=None, description="none, auto, required or named.")
    parallel_tool_calls: bool = pydantic.Field(default=True, description="Several calls per turn allowed.")
    response_format: ResponseFormat | None = pydantic.Field(default=None, description="The answer's format.")


def parse_request_tools(
    tools: list[Any] | None,
    tool_choice: str | dict[str, Any] | None,
    parallel_tool_calls: bool | None,
    response_format: dict[str, Any] | None,
) -> RequestTools:
    """The fields as models; a malformed one is a 400 naming it (the first error's location)."""
    raw = {"tools": tools or [], "tool_choice": tool_choice, "response_format": response_format}
    if parallel_tool_calls is not None:
        raw["parallel_tool_calls"] = parallel_tool_calls
    try:
        parsed = RequestTools.model_validate(raw)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = [str(part) for part in first["loc"] if not str(part).startswith("function-after")]
        param = where[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in where[1:3])
        raise errors.invalid_request(f"Invalid {param}: {first['msg']}", param, "invalid_value") from error
    names = [tool.function.name for tool in parsed.tools]
    if len(set(names)) != len(names):
        raise errors.invalid_request("Tool function names must be unique.", "tools", "invalid_value")
    for index, tool in enumerate(parsed.tools):
        _check_schema(tool.function.parameters, f"tools[{index}].function.parameters")
    if parsed.response_format is not None and parsed.response_format.json_schema is not None:
        _check_schema(parsed.response_format.json_schema.schema_, "response_format.json_schema.schema")
    return parsed


def _check_schema(schema: dict[str, Any] | None, param: str) -> None:
    """Schemas must serialise (they reach the engine as JSON text)."""
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as error:  # pragma: no cover - parsed JSON always dumps
        raise errors.invalid_request(f"{param} is not valid JSON: {error}", param, "invalid_value") from error
