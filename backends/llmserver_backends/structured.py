"""What structured outputs and tool calling ask of an engine, in engine-neutral shapes.

The server turns `response_format` and a forcing `tool_choice` into one `JsonConstraint` (the
output must be JSON following a schema, or any JSON object), and `tools` into the OpenAI tool
definitions the chat template shows the model. Each engine applies the constraint with its own
grammar machinery (llama.cpp grammars, xgrammar, vLLM's structured outputs) and renders tools and
tool-call history with the model's own chat template, using `template_message` so every engine
hands templates the same message shape (Hugging Face's: arguments as objects, not strings).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any


# json_object: any object (xgrammar's and vLLM's builtin JSON grammars would allow arrays too).
ANY_OBJECT = '{"type": "object", "additionalProperties": true}'
# The request fields an engine honours once it applies JsonConstraint and renders tools.
PARAMETERS = frozenset({"response_format", "tools", "tool_choice", "parallel_tool_calls"})


@dataclasses.dataclass(frozen=True)
class JsonConstraint:
    """The output must be JSON: following `schema` (JSON text), or any object when it is None.
    `param` is the request field it came from, named when an engine cannot compile the schema."""

    schema: str | None = None
    param: str = "response_format"

    @classmethod
    def of(cls, schema: Mapping[str, Any] | None, param: str = "response_format") -> JsonConstraint:
        """A constraint from a schema dict (None: any JSON object)."""
        return cls(None if schema is None else json.dumps(schema), param)


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """A call in an assistant message of the history (arguments as the JSON text sent)."""

    id: str
    name: str
    arguments: str


def template_arguments(arguments: str) -> Any:
    """Arguments as templates expect them: the parsed object (Qwen, Llama 3 and Mistral templates
    write `arguments | tojson`), or the text as sent when it is not JSON."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def template_message(
    role: str,
    content: Any,
    *,
    name: str | None = None,
    tool_calls: tuple[ToolCall, ...] = (),
    tool_call_id: str | None = None,
) -> dict[str, Any]:
    """One message in the dict shape Hugging Face chat templates (and llama-cpp-python's Jinja
    formatter) take: OpenAI's, with tool-call arguments as objects."""
    item: dict[str, Any] = {"role": role, "content": content}
    if name:
        item["name"] = name
    if tool_calls:
        item["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": template_arguments(call.arguments)},
            }
            for call in tool_calls
        ]
    if tool_call_id is not None:
        item["tool_call_id"] = tool_call_id
    return item


def tool_template_kwargs(tools: tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
    """`tools=` for apply_chat_template, only when there are tools (templates test `if tools`)."""
    return {"tools": [dict(tool) for tool in tools]} if tools else {}
