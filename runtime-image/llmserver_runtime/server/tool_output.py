"""Structured outputs and tool calls for one chat request: what the engine is asked (`Plan`: the
JSON constraint, the tools its template shows) and how its text becomes OpenAI's answer (content,
or `tool_calls` with finish_reason "tool_calls"), whole or streamed as tool-call deltas.

tool_choice  template shows tools  decoding                          output parsed as
none         no                    free (or response_format's JSON)  content
auto         yes                   free (or response_format's JSON)  tool_parsers.parse_auto
required     yes                   JSON array of calls (schema)      tool_parsers.parse_required
named        yes                   the function's arguments (schema) arguments of that function
A forced call and a JSON response_format cannot both hold: that request is a 400.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from llmserver_backends import structured, tool_parsers

from llmserver_api.protocol import chat, errors, tools

Delta = dict[str, Any]  # a chat chunk's delta, as the wire carries it


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the request asks beyond plain text."""

    mode: str = "text"  # text | auto | required | named
    constraint: structured.JsonConstraint | None = None
    tools: tuple[dict[str, Any], ...] = ()
    names: frozenset[str] = frozenset()
    named: str | None = None
    parallel: bool = True


def plan(body: chat.ChatCompletionRequest) -> Plan:
    """The request's Plan; a contradiction or an unknown function is a 400 naming the field."""
    parsed = tools.parse_request_tools(body.tools, body.tool_choice, body.parallel_tool_calls, body.response_format)
    constraint = _format_constraint(parsed.response_format)
    choice = parsed.tool_choice or ("auto" if parsed.tools else "none")
    if choice != "none" and not parsed.tools:
        raise errors.invalid_request("tool_choice needs tools to choose from.", "tool_choice", "invalid_value")
    if choice == "none":
        return Plan(constraint=constraint)
    functions = {tool.function.name: tool.function.parameters for tool in parsed.tools}
    shown = tuple(tool.model_dump(exclude_none=True, by_alias=True) for tool in parsed.tools)
    common = {"tools": shown, "names": frozenset(functions), "parallel": parsed.parallel_tool_calls}
    if choice == "auto":
        return Plan(mode="auto", constraint=constraint, **common)
    if constraint is not None:
        raise errors.invalid_request(
            "response_format cannot be combined with a tool_choice that forces a call.", "response_format", "invalid_value"
        )
    if choice == "required":
        schema = tool_parsers.required_schema(list(functions.items()), parsed.parallel_tool_calls)
        return Plan(mode="required", constraint=structured.JsonConstraint.of(schema, "tools"), **common)
    assert isinstance(choice, tools.NamedToolChoice)
    name = choice.function.name
    if name not in functions:
        raise errors.invalid_request(f"tool_choice names {name!r}, which is not in tools.", "tool_choice", "invalid_value")
    schema = tool_parsers.named_schema(functions[name])
    return Plan(mode="named", constraint=structured.JsonConstraint.of(schema, "tools"), named=name, **common)


def _format_constraint(response_format: tools.ResponseFormat | None) -> structured.JsonConstraint | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return structured.JsonConstraint()
    assert response_format.json_schema is not None
    return structured.JsonConstraint.of(response_format.json_schema.schema_ or {"type": "object"})


def new_call_id() -> str:
    """An OpenAI-style tool call id."""
    return "call_" + secrets.token_hex(12)


def _calls(plan_: Plan, text: str, finish_reason: str) -> tuple[tool_parsers.Call, ...] | None:
    """The calls in a whole answer, or None when it is content."""
    if plan_.mode == "named":
        assert plan_.named is not None
        return (tool_parsers.Call(plan_.named, text),)  # cut short by max_tokens: partial, like OpenAI
    if plan_.mode == "required":
        return tool_parsers.parse_required(text)
    if plan_.mode == "auto":
        calls = tool_parsers.parse_auto(text, plan_.names).calls
        return (calls if plan_.parallel else calls[:1]) or None
    return None


def whole(plan_: Plan, text: str, finish_reason: str) -> tuple[str | None, list[tools.ToolCall] | None, str]:
    """(content, tool_calls, finish_reason) of one whole choice."""
    calls = _calls(plan_, text, finish_reason)
    if not calls:
        return text, None, finish_reason
    content = tool_parsers.parse_auto(text, plan_.names).content if plan_.mode == "auto" else None
    made = [
        tools.ToolCall(id=new_call_id(), function=tools.FunctionCall(name=c.name, arguments=c.arguments)) for c in calls
    ]
    return content, made, "tool_calls" if finish_reason == "stop" else finish_reason


def _call_deltas(index: int, call: tool_parsers.Call) -> list[Delta]:
    """OpenAI's two steps for one call: id, type and name with empty arguments; then arguments."""
    head = tools.ChunkToolCall(
        index=index, id=new_call_id(), type="function", function=tools.ChunkFunction(name=call.name, arguments="")
    )
    deltas = [{"tool_calls": [head.model_dump()]}]
    if call.arguments:
        deltas.append(_arguments(index, call.arguments))
    return deltas


def _arguments(index: int, fragment: str) -> Delta:
    piece = tools.ChunkToolCall(index=index, function=tools.ChunkFunction(arguments=fragment))
    return {"tool_calls": [piece.model_dump()]}


class ChoiceStream:
    """Turns one choice's streamed text into chat deltas: content as it comes, or tool calls.

    named: the call's header at once, then every piece as an arguments fragment. required: held
    to the end (the array only parses whole), then each call. auto: content streams until the
    text may be a call (`tool_parsers.may_start_call`); from there it is held and parsed at the
    end, and shown as content if it is no call after all."""

    def __init__(self, plan_: Plan) -> None:
        self.plan = plan_
        self.plain = plan_.mode == "text"
        self._held = ""
        self._streamed_content = False
        self._holding = plan_.mode == "required"

    def feed(self, text: str) -> list[Delta]:
        """Deltas for the next piece of text."""
        if self.plain:
            return [{"content": text}] if text else []
        if self.plan.mode == "named":
            assert self.plan.named is not None
            first = [] if self._streamed_content else _call_deltas(0, tool_parsers.Call(self.plan.named, ""))
            self._streamed_content = True
            return first + ([_arguments(0, text)] if text else [])
        self._held += text
        if self._holding:
            return []
        if not self._streamed_content:
            start = self._held.lstrip()
            if not start or start[0] in "{[" or start.startswith(tool_parsers.PYTHON_TAG):
                self._holding = bool(start)
                return []
            if tool_parsers.PYTHON_TAG.startswith(start) and not tool_parsers.HERMES_START.startswith(start):
                return []
        safe, self._held = tool_parsers.hermes_split(self._held)
        self._holding = tool_parsers.HERMES_START in self._held
        if not safe:
            return []
        self._streamed_content = True
        return [{"content": safe}]

    def finish(self, finish_reason: str) -> tuple[list[Delta], str]:
        """Deltas for what was held, and the choice's finish reason."""
        if self.plain:
            return [], finish_reason
        if self.plan.mode == "named":
            head = [] if self._streamed_content else self.feed("")
            return head, "tool_calls" if finish_reason == "stop" else finish_reason
        held, self._held = self._held, ""
        if self.plan.mode == "required":
            calls = tool_parsers.parse_required(held)
        else:
            calls = tool_parsers.parse_auto(held, self.plan.names).calls or None
            calls = calls if calls is None or self.plan.parallel else calls[:1]
        if not calls:
            return ([{"content": held}] if held else []), finish_reason
        deltas = [delta for index, call in enumerate(calls) for delta in _call_deltas(index, call)]
        return deltas, "tool_calls" if finish_reason == "stop" else finish_reason

