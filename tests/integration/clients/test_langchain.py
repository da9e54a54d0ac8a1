"""LangChain's ChatOpenAI against the gateway in front of llama.cpp on the tiny GGUF: what
LangChain applications send (invoke, stream, bind_tools, with_structured_output, and the Responses
API through `use_responses_api`) works end to end. The model has random weights, so the tests
check shapes and constraints, not wording.

bind_tools with a forced call and with_structured_output need grammar-constrained decoding; while
the runtime refuses them (400 unsupported_parameter) those tests skip, saying so."""

from __future__ import annotations

from collections.abc import Callable
import json
from typing import Any, Literal, TypeVar

import openai
import pydantic
import pytest
from langchain_core import messages
from langchain_openai import ChatOpenAI

pytestmark = pytest.mark.timeout(300)

MODEL = "tiny"  # the served name the conftest gives the runtime
T = TypeVar("T")


class Weather(pydantic.BaseModel):
    """Weather report for a city (enum and boolean fields: a random model's answer stays short)."""

    city: Literal["Paris", "Rome"] = pydantic.Field(description="The city.")
    sunny: bool = pydantic.Field(description="Whether the sun shines.")


def get_weather(city: Literal["Paris", "Rome"]) -> str:
    """The weather in a city (an enum argument: a random model's call stays short)."""
    return f"sunny in {city}"


def _chat(gateway_url: str, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=gateway_url, api_key="unused", max_retries=0, timeout=120, **kwargs)


def _unless_refused(call: Callable[[], T], what: str) -> T:
    """`call()`, or a skip naming `what` while the runtime answers 400 unsupported_parameter."""
    try:
        return call()
    except openai.BadRequestError as error:
        body = error.body if isinstance(error.body, dict) else {}
        if body.get("code") == "unsupported_parameter":
            pytest.skip(f"the runtime does not support {what} yet: {body.get('param')}: {body.get('message')}")
        raise


def test_invoke(gateway_url: str) -> None:
    reply = _chat(gateway_url, max_tokens=8).invoke([messages.SystemMessage("Be brief."), messages.HumanMessage("Hi")])
    assert isinstance(reply, messages.AIMessage) and isinstance(reply.content, str) and reply.content
    assert reply.usage_metadata is not None and 0 < reply.usage_metadata["output_tokens"] <= 8
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


def test_stream(gateway_url: str) -> None:
    chunks = list(_chat(gateway_url, max_tokens=8, stream_usage=True).stream("Count to three."))
    assert len(chunks) > 1
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole.content, str) and whole.content
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0


def test_invoke_and_stream_through_the_responses_api(gateway_url: str) -> None:
    """Greedy decoding: the streamed answer must equal the whole one."""
    chat = _chat(gateway_url, max_tokens=8, temperature=0, use_responses_api=True)
    conversation = [messages.SystemMessage("Be brief."), messages.HumanMessage("Hi")]
    reply = chat.invoke(conversation)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0
    assert reply.response_metadata["status"] in ("completed", "incomplete")
    streamed = list(chat.stream(conversation))
    assert "".join(chunk.text for chunk in streamed) == reply.text


def test_bind_tools_with_a_forced_call(gateway_url: str) -> None:
    chat = _chat(gateway_url, max_tokens=64).bind_tools([get_weather], tool_choice="get_weather")
    reply = _unless_refused(lambda: chat.invoke("What is the weather in Paris?"), "tool calls")
    assert [call["name"] for call in reply.tool_calls] == ["get_weather"]
    assert reply.tool_calls[0]["args"]["city"] in ("Paris", "Rome")
    follow_up = [
        messages.HumanMessage("What is the weather in Paris?"),
        reply,
        messages.ToolMessage(get_weather(**reply.tool_calls[0]["args"]), tool_call_id=reply.tool_calls[0]["id"]),
    ]
    answer = _chat(gateway_url, max_tokens=8).bind_tools([get_weather]).invoke(follow_up)
    assert isinstance(answer, messages.AIMessage)


def test_bind_tools_auto_answers_in_text_or_a_call(gateway_url: str) -> None:
    chat = _chat(gateway_url, max_tokens=16).bind_tools([get_weather])
    reply = _unless_refused(lambda: chat.invoke("What is the weather in Paris?"), "tools")
    assert isinstance(reply, messages.AIMessage)
    assert all(call["name"] == "get_weather" for call in reply.tool_calls)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output(gateway_url: str, method: str) -> None:
    chat = _chat(gateway_url, max_tokens=64).with_structured_output(Weather, method=method, include_raw=True)
    result = _unless_refused(lambda: chat.invoke("The weather in Paris?"), f"structured output ({method})")
    assert result["parsing_error"] is None, result
    assert isinstance(result["parsed"], Weather)


def test_with_structured_output_json_mode(gateway_url: str) -> None:
    """json_mode only promises a JSON object (LangChain then validates it against the model); a
    random model may not close it within the budget, and then what came must start one."""
    chat = _chat(gateway_url, max_tokens=64).with_structured_output(Weather, method="json_mode", include_raw=True)
    try:
        result = _unless_refused(lambda: chat.invoke("The weather in Paris, as JSON?"), "structured output (json_mode)")
    except openai.LengthFinishReasonError as cut:
        content = cut.completion.choices[0].message.content or ""
        assert content.lstrip().startswith("{"), content
        return
    assert isinstance(json.loads(result["raw"].content), dict)
