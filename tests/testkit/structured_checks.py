"""Structured outputs and tool calls through the official SDK, shared by every engine's tests.

The tiny models have random weights, so nothing here depends on what they would say: every
check uses a small, bounded schema (enums, short strings, small integer ranges, no extra
properties) so constrained decoding must close the JSON within max_tokens, after which the
grammar allows only the end token (finish_reason "stop" / "tool_calls"). What is checked is
that the output parses and follows the schema (jsonschema), and that tools and tool results
reach the model through its chat template (prompt tokens grow with them)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import jsonschema
import openai
import pydantic
import pytest

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_ARGS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_ARGS = {
    "type": "object",
    "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
    "required": ["zone"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now.", "parameters": WEATHER_ARGS}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Time now.", "parameters": TIME_ARGS}}
SCHEMAS = {"get_weather": WEATHER_ARGS, "get_time": TIME_ARGS}
REPORT = {
    "type": "object",
    "properties": {
        "sunny": {"type": "boolean"},
        "level": {"type": "integer", "minimum": 0, "maximum": 9},
        "city": {"type": "string", "enum": ["Paris", "Oslo"]},
    },
    "required": ["sunny", "level", "city"],
    "additionalProperties": False,
}
MAX_TOKENS = 120


class Report(pydantic.BaseModel):
    """What `chat.completions.parse` asks for (the SDK sends its strict JSON schema)."""

    sunny: bool
    level: Annotated[int, pydantic.Field(ge=0, le=9)]
    city: Literal["Paris", "Oslo"]


def check_parse_pydantic(client: openai.OpenAI, model: str) -> None:
    """The SDK's structured-output helper gets a parsed pydantic object back."""
    completion = client.chat.completions.parse(
        model=model, messages=MESSAGES, response_format=Report, max_tokens=MAX_TOKENS, temperature=0.0
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.parsed, Report)
    assert Report.model_validate_json(choice.message.content or "") == choice.message.parsed


def check_json_object(client: openai.OpenAI, model: str) -> None:
    """json_object: whatever the model writes is one JSON object (seeded sampling: it closes)."""
    reply = client.chat.completions.create(
        model=model, messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=MAX_TOKENS, seed=3
    )
    choice = reply.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content or ""), dict), choice.message.content
    else:  # cut by max_tokens: validity is not promised, but what came must start an object
        assert choice.finish_reason == "length" and (choice.message.content or "").lstrip().startswith("{")


def check_json_schema_streamed(client: openai.OpenAI, model: str) -> None:
    """json_schema, streamed: the joined content follows the schema."""
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "report", "schema": REPORT, "strict": True}},
        max_tokens=MAX_TOKENS,
        stream=True,
        seed=7,
    )
    chunks = [chunk for chunk in stream if chunk.choices]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"], text
    jsonschema.validate(json.loads(text), REPORT)


def _check_calls(calls: list[Any], names: set[str]) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function" and call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def check_named_tool_call(client: openai.OpenAI, model: str) -> None:
    """A named tool_choice: exactly that function, arguments valid for its schema; also streamed."""
    kwargs: dict[str, Any] = {
        "model": model, "messages": MESSAGES, "tools": [WEATHER, TIME], "max_tokens": MAX_TOKENS, "seed": 1,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }  # fmt: skip
    choice = client.chat.completions.create(**kwargs).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    _check_calls(choice.message.tool_calls or [], {"get_weather"})
    assert len(choice.message.tool_calls or []) == 1
    chunks = [c for c in client.chat.completions.create(**kwargs, stream=True) if c.choices]
    pieces = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert pieces[0].id.startswith("call_") and pieces[0].function.name == "get_weather" and pieces[0].function.arguments == ""
    jsonschema.validate(json.loads("".join(p.function.arguments or "" for p in pieces)), WEATHER_ARGS)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]


def check_required_tool_call(client: openai.OpenAI, model: str) -> None:
    """tool_choice required: one or more calls of offered functions, each valid; one without
    parallel tool calls."""
    for parallel in (True, False):
        choice = client.chat.completions.create(
            model=model, messages=MESSAGES, tools=[WEATHER, TIME], tool_choice="required",
            parallel_tool_calls=parallel, max_tokens=MAX_TOKENS, seed=2,
        ).choices[0]  # fmt: skip
        assert choice.finish_reason == "tool_calls", choice.message
        _check_calls(choice.message.tool_calls or [], {"get_weather", "get_time"})
        if not parallel:
            assert len(choice.message.tool_calls or []) == 1


def check_tool_round_trip(client: openai.OpenAI, model: str) -> None:
    """An assistant turn with tool_calls and the tool's answer are accepted and rendered: the
    prompt grows with the tools and with the tool result's text."""

    def prompt_tokens(result: str, tools: list[dict[str, Any]] | None) -> int:
        history = [
            *MESSAGES,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc", "content": result},
        ]
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        reply = client.chat.completions.create(model=model, messages=history, max_tokens=4, **extra)
        return reply.usage.prompt_tokens

    short = prompt_tokens("Sunny.", [WEATHER])
    assert prompt_tokens("Sunny and warm, twenty one degrees, light wind.", [WEATHER]) > short
    assert prompt_tokens("Sunny.", None) < short


def check_refused(client: openai.OpenAI, model: str, params: dict[str, str]) -> None:
    """An engine without the feature answers 400 unsupported_parameter naming the field."""
    cases = {
        "response_format": {"response_format": {"type": "json_object"}},
        "tools": {"tools": [WEATHER]},
        "tool_choice": {"tools": [WEATHER], "tool_choice": "required"},
    }
    for param, expected in params.items():
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4, **cases[param])
        body = raised.value.body
        assert isinstance(body, dict) and body["code"] == "unsupported_parameter" and body["param"] == expected


class StructuredChecks:
    """Mix into an engine's test class that provides `server` and `model`; not collected itself."""

    def test_parse_pydantic(self, server: Any) -> None:
        check_parse_pydantic(server.client(), "tiny")

    def test_json_object(self, server: Any) -> None:
        check_json_object(server.client(), "tiny")

    def test_json_schema_streamed(self, server: Any) -> None:
        check_json_schema_streamed(server.client(), "tiny")

    def test_named_tool_call(self, server: Any) -> None:
        check_named_tool_call(server.client(), "tiny")

    def test_required_tool_call(self, server: Any) -> None:
        check_required_tool_call(server.client(), "tiny")

    def test_tool_round_trip(self, server: Any) -> None:
        check_tool_round_trip(server.client(), "tiny")
