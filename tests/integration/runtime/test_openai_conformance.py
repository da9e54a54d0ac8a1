"""Every response body the runtime writes validates against OpenAI's published OpenAPI document
(tests/testkit/openai_openapi): chat, completions and embeddings, whole and streamed chunk by
chunk, on the fake engine and on llama.cpp with the tiny GGUF. The document is what OpenAI's own
SDKs are generated from, so a body that breaks it breaks some typed client somewhere."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from testkit import runtime_server
from testkit.models import tiny_gguf  # noqa: F401 - session fixture
from testkit.openai_openapi import validate

pytestmark = pytest.mark.timeout(300)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module", params=["fake", "llama-cpp"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp(request.param)
    if request.param == "fake":
        args: tuple[str, ...] = ("fake", "unused", "tiny")
    else:
        gguf = request.getfixturevalue("tiny_gguf")
        engine = ("--capabilities", "TextGeneration,Embeddings", "--n-ctx", "2048", "--n-threads", "2")
        args = ("llama-cpp", gguf, "tiny", *engine)
    with runtime_server.start(tmp, *args) as running:
        yield running


def _post(server: runtime_server.RuntimeServer, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(server.url + path, json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _stream(server: runtime_server.RuntimeServer, path: str, body: dict[str, Any], schema: str) -> list[Any]:
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return validate.check_stream(response.iter_lines(), schema)


def test_chat_whole(server: runtime_server.RuntimeServer) -> None:
    body = _post(server, "/v1/chat/completions", {"model": "tiny", "messages": MESSAGES, "max_tokens": 8, "n": 2})
    validate.check(body, validate.CHAT)
    assert len(body["choices"]) == 2


def test_chat_whole_with_logprobs_where_the_engine_has_them(server: runtime_server.RuntimeServer) -> None:
    request = {"model": "tiny", "messages": MESSAGES, "max_tokens": 4, "logprobs": True, "top_logprobs": 2}
    response = httpx.post(server.url + "/v1/chat/completions", json=request, timeout=120)
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "unsupported_parameter"
        pytest.skip("this engine refuses logprobs")
    validate.check(response.json(), validate.CHAT)
    assert response.json()["choices"][0]["logprobs"]["content"]


def test_chat_stream_with_usage(server: runtime_server.RuntimeServer) -> None:
    request = {"model": "tiny", "messages": MESSAGES, "max_tokens": 8, "stream_options": {"include_usage": True}}
    events = _stream(server, "/v1/chat/completions", request, validate.CHAT_CHUNK)
    assert events[-1]["usage"]["total_tokens"] > 0
    assert any(event["choices"] and event["choices"][0]["finish_reason"] for event in events)


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"], "additionalProperties": False,
        },
    },
}  # fmt: skip
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tools": [TOOL], "tool_choice": "required"},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA, "strict": True}}},
    ],
    ids=["named-tool", "required-tool", "json-schema"],
)
def test_chat_tool_calls_and_structured_output(server: runtime_server.RuntimeServer, extra: dict[str, Any]) -> None:
    """Tool-call messages and deltas validate too (where the engine constrains decoding)."""
    request = {"model": "tiny", "messages": MESSAGES, "max_tokens": 96, **extra}
    response = httpx.post(server.url + "/v1/chat/completions", json=request, timeout=120)
    if response.status_code == 400 and response.json()["error"]["code"] == "unsupported_parameter":
        pytest.skip(f"this engine refuses {response.json()['error']['param']}")
    assert response.status_code == 200, response.text
    validate.check(response.json(), validate.CHAT)
    events = _stream(server, "/v1/chat/completions", request, validate.CHAT_CHUNK)
    choice = response.json()["choices"][0]
    if "tools" in extra and choice["finish_reason"] != "length":  # a random model may not close the array
        assert choice["message"]["tool_calls"] and choice["finish_reason"] == "tool_calls"
    if "tools" in extra and events[-1]["choices"][0]["finish_reason"] != "length":
        assert any(e["choices"] and e["choices"][0]["delta"].get("tool_calls") for e in events)


def test_completion_whole_and_stream(server: runtime_server.RuntimeServer) -> None:
    request = {"model": "tiny", "prompt": ["one", "two"], "max_tokens": 6}
    validate.check(_post(server, "/v1/completions", request), validate.COMPLETION)
    events = _stream(server, "/v1/completions", request, validate.COMPLETION_CHUNK)
    assert {event["choices"][0]["index"] for event in events if event["choices"]} == {0, 1}


def test_embeddings(server: runtime_server.RuntimeServer) -> None:
    body = _post(server, "/v1/embeddings", {"model": "tiny", "input": ["a cat", "a dog"]})
    validate.check(body, validate.EMBEDDING)
    assert len(body["data"]) == 2


def test_the_validator_catches_what_openai_clients_rely_on() -> None:
    """Controls: the checks above can fail. A chat message without `refusal`, a whole completion
    with a null finish_reason and an embedding without its vector are refused."""
    chat = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "tiny",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip
    validate.check(chat, validate.CHAT)
    no_refusal = copy.deepcopy(chat)
    del no_refusal["choices"][0]["message"]["refusal"]
    assert any("refusal" in v.message for v in validate.violations(no_refusal, validate.CHAT))
    completion = {
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "tiny",
        "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": None}],
    }  # fmt: skip
    assert validate.violations(completion, validate.COMPLETION)
    validate.check(completion, validate.COMPLETION_CHUNK)
    embedding = {"object": "list", "model": "tiny", "data": [{"object": "embedding", "index": 0}],
                 "usage": {"prompt_tokens": 1, "total_tokens": 1}}  # fmt: skip
    assert validate.violations(embedding, validate.EMBEDDING)


def test_documented_nulls_mean_the_default(server: runtime_server.RuntimeServer) -> None:
    """The document lets `n`, `stream` (and completions' `echo`) be null; found by fuzzing."""
    nulls = {"n": None, "stream": None}
    chat = _post(server, "/v1/chat/completions", {"model": "tiny", "messages": MESSAGES, "max_tokens": 2, **nulls})
    validate.check(chat, validate.CHAT)
    body = _post(server, "/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2, "echo": None, **nulls})
    validate.check(body, validate.COMPLETION)
    assert len(body["choices"]) == 1
