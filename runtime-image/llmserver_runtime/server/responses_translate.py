"""A Responses API request as the chat request that generates its answer.

One generation path serves both APIs: the input items become chat messages (instructions first,
function calls as an assistant turn's tool_calls, their outputs as tool messages), the Responses
tool and format shapes become chat's `tools` / `response_format`, and what chat honours or
refuses (per engine) holds for Responses too. Errors keep OpenAI's shape but name the Responses
field (`max_output_tokens`, `text.format`, `input`), see `renamed_params`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pydantic

from llmserver_api.protocol import chat, common, errors, tools
from llmserver_api.protocol import responses as protocol

# Fields that change what is generated and have no meaning without stored state or hosted features.
_REFUSED = {
    "previous_response_id": "Responses are not stored here: send the whole conversation in input.",
    "conversation": "Conversations are not stored here: send the whole conversation in input.",
    "prompt": "Stored prompt templates are not supported here.",
    "top_logprobs": "Log probabilities are not supported on /v1/responses here; use /v1/chat/completions.",
    "moderation": "Moderation is not run here.",
    "context_management": "Context management (compaction) is not supported here.",
}


def _unsupported(param: str, message: str) -> errors.APIError:
    return errors.invalid_request(message, param, "unsupported_parameter")


def check(body: protocol.ResponsesRequest) -> None:
    """400 naming the first field that cannot be honoured: stored-state and hosted features,
    hosted tools, item types other than messages and function calls, then unknown fields."""
    for name, message in _REFUSED.items():
        if getattr(body, name) is not None:
            raise _unsupported(name, message)
    if body.background:
        raise _unsupported("background", "Background responses are not supported here.")
    if body.include:
        raise _unsupported("include", f"include {body.include} is not supported here.")
    if body.truncation not in (None, "disabled"):
        raise _unsupported("truncation", "Only truncation 'disabled' is supported: input is never cut.")
    if body.reasoning is not None and (body.reasoning.summary or body.reasoning.generate_summary):
        raise _unsupported("reasoning.summary", "Reasoning summaries are not supported here.")
    for index, tool in enumerate(body.tools or []):
        if tool.type != "function":
            raise _unsupported(f"tools[{index}].type", f"Hosted tools ({tool.type}) are not supported here.")
    for index, item in enumerate(body.input if isinstance(body.input, list) else []):
        if isinstance(item, protocol.UnsupportedItem):
            raise _unsupported(f"input[{index}].type", f"Input items of type {item.type!r} are not supported here.")
    for path in common.unknown_fields(body):
        raise _unsupported(path, f"Unrecognized request argument supplied: {path}")


def _part(part: Any, where: str) -> chat.TextPart | chat.ImagePart:
    if isinstance(part, protocol.InputImage):
        if part.image_url is None:
            raise _unsupported(f"{where}.file_id", "Uploaded files are not supported here; send image_url.")
        return chat.ImagePart(type="image_url", image_url=chat.ImageURL(url=part.image_url, detail=part.detail))
    text = part.refusal if isinstance(part, protocol.Refusal) else part.text
    return chat.TextPart(type="text", text=text)


def _message(item: protocol.MessageItem, where: str) -> chat.Message:
    if isinstance(item.content, str):
        return chat.Message(role=item.role, content=item.content)
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(item.content)]
    if all(isinstance(part, chat.TextPart) for part in parts):
        return chat.Message(role=item.role, content="\n".join(p.text for p in parts if isinstance(p, chat.TextPart)))
    return chat.Message(role=item.role, content=parts)


def messages(body: protocol.ResponsesRequest) -> list[chat.Message]:
    """The conversation as chat messages; consecutive function calls share one assistant turn."""
    out: list[chat.Message] = []
    if body.instructions:
        out.append(chat.Message(role="system", content=body.instructions))
    items = [protocol.MessageItem(role="user", content=body.input)] if isinstance(body.input, str) else body.input
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if isinstance(item, protocol.MessageItem):
            out.append(_message(item, where))
        elif isinstance(item, protocol.FunctionCallItem):
            function = {"name": item.name, "arguments": item.arguments}
            call = {"id": item.call_id, "type": "function", "function": function}
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and last.tool_calls is not None:
                last.tool_calls.append(tools.ToolCall.model_validate(call))
            else:
                out.append(chat.Message.model_validate({"role": "assistant", "content": None, "tool_calls": [call]}))
        elif isinstance(item, protocol.FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else "\n".join(part.text for part in item.output)
            out.append(chat.Message(role="tool", content=output, tool_call_id=item.call_id))
    return out


def _tools(body: protocol.ResponsesRequest) -> list[dict[str, Any]] | None:
    if body.tools is None:
        return None
    converted = []
    for tool in body.tools:
        function = tool.model_dump(exclude_none=True, exclude={"type"})
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not isinstance(choice, dict):
        return choice
    if choice.get("type") != "function" or set(choice) - {"type", "name"}:
        raise _unsupported("tool_choice", f"tool_choice {choice} is not supported here; name a function.")
    return {"type": "function", "function": {"name": choice.get("name")}}


def _response_format(body: protocol.ResponsesRequest) -> dict[str, Any] | None:
    form = body.text.format if body.text is not None else None
    if form is None or form.type == "text":
        return None
    if form.type == "json_object":
        return {"type": "json_object"}
    schema = form.model_dump(by_alias=True, exclude_none=True, exclude={"type"})
    return {"type": "json_schema", "json_schema": schema}


def to_chat(body: protocol.ResponsesRequest) -> chat.ChatCompletionRequest:
    """The chat request generating `body`'s answer (`check` it first)."""
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": messages(body),
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tools": _tools(body),
        "tool_choice": _tool_choice(body.tool_choice),
        "parallel_tool_calls": body.parallel_tool_calls,
        "response_format": _response_format(body),
        "stream": bool(body.stream),
        "verbosity": body.text.verbosity if body.text is not None else None,
        "reasoning_effort": body.reasoning.effort if body.reasoning is not None else None,
    }
    try:
        return chat.ChatCompletionRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except pydantic.ValidationError as error:
        raise errors.from_validation_errors(error.errors()) from error


# chat's parameter names (as errors name them) -> the Responses request's
_PARAMS = (
    (re.compile(r"^messages.*"), "input"),
    (re.compile(r"^max_completion_tokens$|^max_tokens$"), "max_output_tokens"),
    (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
    (re.compile(r"^tools\[(\d+)\]\.function"), r"tools[\1]"),
    (re.compile(r"^verbosity$"), "text.verbosity"),
    (re.compile(r"^reasoning_effort$"), "reasoning.effort"),
)


def responses_param(param: str | None) -> str | None:
    """A chat parameter path as the Responses field it came from."""
    if param is None:
        return None
    for pattern, replacement in _PARAMS:
        if pattern.search(param):
            return pattern.sub(replacement, param, count=1)
    return param


@contextlib.contextmanager
def renamed_params() -> Iterator[None]:
    """Errors raised inside name the Responses fields instead of chat's."""
    try:
        yield
    except errors.APIError as error:
        error.detail.param = responses_param(error.detail.param)
        raise
