"""A chat request's tools and response_format become an engine plan, and the engine's text becomes
OpenAI's answer: content or tool calls, whole or as stream deltas (as the SDK accumulates them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmserver_api.protocol import chat, errors
from llmserver_runtime.server import tool_output

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def _request(**fields: Any) -> chat.ChatCompletionRequest:
    return chat.ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)


def _refused(param: str, **fields: Any) -> None:
    with pytest.raises(errors.APIError) as raised:
        tool_output.plan(_request(**fields))
    assert raised.value.status_code == 400 and raised.value.detail.param == param


def test_plans_per_tool_choice() -> None:
    assert tool_output.plan(_request()) == tool_output.Plan()
    assert tool_output.plan(_request(tools=[WEATHER], tool_choice="none")).tools == ()
    auto = tool_output.plan(_request(tools=[WEATHER, TIME]))
    assert auto.mode == "auto" and auto.constraint is None and [t["function"]["name"] for t in auto.tools] == [
        "get_weather", "get_time"
    ]  # fmt: skip
    named = tool_output.plan(_request(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert named.mode == "named" and json.loads(named.constraint.schema) == WEATHER["function"]["parameters"]
    required = tool_output.plan(_request(tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False))
    assert required.mode == "required" and json.loads(required.constraint.schema)["maxItems"] == 1
    fmt = tool_output.plan(_request(response_format={"type": "json_object"}))
    assert fmt.mode == "text" and fmt.constraint is not None and fmt.constraint.schema is None
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = tool_output.plan(_request(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    assert json.loads(fmt.constraint.schema) == schema


def test_contradictions_and_malformed_fields_are_400s() -> None:
    _refused("tool_choice", tool_choice="required")
    _refused("tool_choice", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    _refused("response_format", tools=[WEATHER], tool_choice="required", response_format={"type": "json_object"})
    _refused("response_format", response_format={"type": "json_schema"})
    _refused("response_format.type", response_format={"type": "yaml"})
    _refused("tools[0].function", tools=[{"type": "function", "function": {"description": "no name"}}])
    _refused("tools", tools=[WEATHER, WEATHER])


def _streamed(plan: tool_output.Plan, pieces: list[str], finish: str = "stop") -> tuple[str, list[dict[str, Any]], str]:
    """Feeds pieces through a ChoiceStream; returns (content, calls as the SDK accumulates them, reason)."""
    stream = tool_output.ChoiceStream(plan)
    deltas = [d for piece in pieces for d in stream.feed(piece)]
    more, reason = stream.finish(finish)
    content, calls = "", {}
    for delta in deltas + more:
        content += delta.get("content") or ""
        for call in delta.get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"name": "", "arguments": ""})
            if "id" in call:
                assert call["id"].startswith("call_") and call["type"] == "function" and call["function"]["arguments"] == ""
                entry["name"] = call["function"]["name"]
            entry["arguments"] += call["function"].get("arguments", "")
    return content, [calls[i] for i in sorted(calls)], reason


def _chunks(text: str) -> list[str]:
    return [text[i : i + 3] for i in range(0, len(text), 3)]


def test_auto_streams_content_then_calls() -> None:
    plan = tool_output.plan(_request(tools=[WEATHER, TIME]))
    text = 'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    content, calls, reason = _streamed(plan, _chunks(text))
    assert content == "Checking.\n" and reason == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert tool_output.whole(plan, text, "stop")[0] == "Checking."
    assert _streamed(plan, _chunks("Plain <b>answer</b> {not a call}")) == ("Plain <b>answer</b> {not a call}", [], "stop")
    assert _streamed(plan, _chunks('{"answer": 1}')) == ('{"answer": 1}', [], "stop")
    llama = '{"name": "get_time", "parameters": {}}'
    assert _streamed(plan, _chunks(llama))[1:] == ([{"name": "get_time", "arguments": "{}"}], "tool_calls")


def test_parallel_off_keeps_the_first_auto_call() -> None:
    plan = tool_output.plan(_request(tools=[WEATHER, TIME], parallel_tool_calls=False))
    text = '[TOOL_CALLS][{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "A"}}]'
    assert [c["name"] for c in _streamed(plan, _chunks(text))[1]] == ["get_time"]
    _, calls, reason = tool_output.whole(plan, text, "stop")
    assert [c.function.name for c in calls] == ["get_time"] and reason == "tool_calls"


def test_forced_calls_stream_and_whole() -> None:
    named = tool_output.plan(_request(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert _streamed(named, _chunks('{"city": "Paris"}')) == ("", [{"name": "get_weather", "arguments": '{"city": "Paris"}'}], "tool_calls")
    content, calls, reason = tool_output.whole(named, '{"city": "Paris"}', "stop")
    assert content is None and calls[0].function.arguments == '{"city": "Paris"}' and reason == "tool_calls"
    assert tool_output.whole(named, '{"ci', "length")[2] == "length"
    required = tool_output.plan(_request(tools=[WEATHER, TIME], tool_choice="required"))
    text = '[{"name": "get_time", "parameters": {}}, {"name": "get_weather", "parameters": {"city": "B"}}]'
    _, calls, reason = _streamed(required, _chunks(text))
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_time", {}), ("get_weather", {"city": "B"})]
    assert reason == "tool_calls"
    assert _streamed(required, ['[{"name": "get_t'], "length") == ('[{"name": "get_t', [], "length")


def test_response_message_omits_tool_calls_unless_made() -> None:
    assert "tool_calls" not in chat.ResponseMessage(content="x").model_dump()
    _, calls, _ = tool_output.whole(tool_output.plan(_request(tools=[TIME], tool_choice="required")),
                                    '[{"name": "get_time", "parameters": {}}]', "stop")  # fmt: skip
    dumped = chat.ResponseMessage(content=None, tool_calls=calls).model_dump()
    assert dumped["tool_calls"][0]["type"] == "function" and dumped["tool_calls"][0]["function"]["name"] == "get_time"
