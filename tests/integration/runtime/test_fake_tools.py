"""Tool calling through `serve` with the official SDK, on the fake backend in echo mode: the
"model" writes the tool call the test scripts (a random model would not choose to call a tool),
so this proves the template input, the auto parser and the wire shapes, whole and streamed."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import openai
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = 'Let me check.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("fake-echo")
    with runtime_server.start(tmp, "fake", "unused", "tiny", extra=["echo=true"]) as server:
        yield server


def test_auto_call_whole(echo_server: runtime_server.RuntimeServer) -> None:
    reply = echo_server.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": CALL}], tools=[WEATHER]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_auto_call_streamed_as_tool_call_deltas(echo_server: runtime_server.RuntimeServer) -> None:
    chunks = list(
        echo_server.client().chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": CALL}], tools=[WEATHER], stream=True
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert content == "Let me check."
    assert pieces[0].index == 0 and pieces[0].id.startswith("call_") and pieces[0].function.name == "get_weather"
    assert pieces[0].function.arguments == ""
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_tool_choice_none_and_unoffered_functions_stay_content(echo_server: runtime_server.RuntimeServer) -> None:
    client = echo_server.client()
    for kwargs in ({"tools": [WEATHER], "tool_choice": "none"}, {}):
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": CALL}], **kwargs)
        assert reply.choices[0].message.content == CALL and reply.choices[0].message.tool_calls is None
        assert reply.choices[0].finish_reason == "stop"


def test_tool_result_round_trip_is_accepted(echo_server: runtime_server.RuntimeServer) -> None:
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C."},
    ]
    reply = echo_server.client().chat.completions.create(model="tiny", messages=history, tools=[WEATHER])
    assert reply.choices[0].message.content == "Sunny, 21 C." and reply.choices[0].finish_reason == "stop"


def test_engine_without_constrained_decoding_refuses_forced_calls(echo_server: runtime_server.RuntimeServer) -> None:
    client = echo_server.client()
    forced = [
        ("tool_choice", {"tools": [WEATHER], "tool_choice": "required"}),
        ("tool_choice", {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        ("response_format", {"response_format": {"type": "json_object"}}),
    ]
    for param, kwargs in forced:
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], **kwargs)
        assert raised.value.body["param"] == param and raised.value.body["code"] == "unsupported_parameter"
