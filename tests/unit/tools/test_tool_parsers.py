"""Tool calls parsed out of canned model output, in every format tool_choice auto accepts, and the
schemas that constrain a forced call."""

from __future__ import annotations

import json

import jsonschema
import pytest
from llmserver_backends import tool_parsers

NAMES = frozenset({"get_weather", "get_time"})


@pytest.mark.parametrize(
    ("text", "content", "calls"),
    [
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', None,
         [("get_weather", {"city": "Paris"})]),
        ('Let me look.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
         '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', "Let me look.",
         [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
        ('[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "UTC"}}]', None, [("get_time", {"zone": "UTC"})]),
        ('{"name": "get_weather", "parameters": {"city": "Rome"}}', None, [("get_weather", {"city": "Rome"})]),
        ('<|python_tag|>{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "A"}}',
         None, [("get_time", {}), ("get_weather", {"city": "A"})]),
        ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Lima\\"}"}', None, [("get_weather", {"city": "Lima"})]),
    ],
)  # fmt: skip
def test_auto_formats_parse(text: str, content: str | None, calls: list[tuple[str, dict[str, object]]]) -> None:
    parsed = tool_parsers.parse_auto(text, NAMES)
    assert parsed.content == content
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == calls


@pytest.mark.parametrize(
    "text",
    [
        "Just an answer.",
        '{"answer": 42}',  # JSON that is no call
        '{"name": "delete_everything", "parameters": {}}',  # a function the request did not offer
        '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',  # cut short
        "[TOOL_CALLS] not json",
    ],
)
def test_text_that_is_no_call_stays_content(text: str) -> None:
    assert tool_parsers.parse_auto(text, NAMES) == tool_parsers.Parsed(text)


def test_stream_holds_back_only_what_may_be_a_call() -> None:
    assert tool_parsers.may_start_call("  ") and tool_parsers.may_start_call("<tool")
    assert tool_parsers.may_start_call('{"na') and tool_parsers.may_start_call("[TOOL")
    assert not tool_parsers.may_start_call("Hello there")
    assert tool_parsers.hermes_split("Sure <tool") == ("Sure ", "<tool")
    assert tool_parsers.hermes_split("Sure <b>") == ("Sure <b>", "")
    assert tool_parsers.hermes_split("a <tool_call>{") == ("a ", "<tool_call>{")


def test_required_schema_accepts_calls_of_offered_functions_only() -> None:
    weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    schema = tool_parsers.required_schema([("get_weather", weather), ("get_time", None)], parallel=False)
    jsonschema.validate([{"name": "get_weather", "parameters": {"city": "Oslo"}}], schema)
    jsonschema.validate([{"name": "get_time", "parameters": {}}], schema)
    for bad in (
        [],
        [{"name": "get_weather", "parameters": {}}],
        [{"name": "other", "parameters": {}}],
        [{"name": "get_time", "parameters": {}}, {"name": "get_time", "parameters": {}}],  # parallel off
        [{"name": "get_time", "parameters": {"extra": 1}}],
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    parallel = tool_parsers.required_schema([("get_time", None)], parallel=True)
    jsonschema.validate([{"name": "get_time", "parameters": {}}] * 2, parallel)
    text = json.dumps([{"name": "get_weather", "parameters": {"city": "Oslo"}}])
    assert tool_parsers.parse_required(text) == (tool_parsers.Call("get_weather", '{"city": "Oslo"}'),)
    assert tool_parsers.parse_required(text[:-3]) is None
