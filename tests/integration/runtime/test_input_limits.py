"""Issue 19: the runtime bounds its inputs before the engine sees them (fake backend, real process).

Empty texts, lone surrogates, absurd numbers, token ids, deep nesting and malformed bodies are 400s
in OpenAI's shape naming the parameter; a body over the limit is a 413 before it is parsed; list
sizes and images per request are capped. After each refusal the process still serves."""

from __future__ import annotations

import base64
import json
import pathlib
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    """Small limits, so every one of them can be crossed cheaply."""
    environment = runtime_server.env(
        LLMSERVER_MAX_BODY_BYTES="65536",
        LLMSERVER_MAX_JSON_DEPTH="8",
        LLMSERVER_MAX_INPUTS="4",
        LLMSERVER_MAX_DOCUMENTS="3",
        LLMSERVER_MAX_IMAGES="2",
        LLMSERVER_MAX_REQUEST_IMAGE_BYTES="150",
    )
    tmp: pathlib.Path = tmp_path_factory.mktemp("limited")
    with runtime_server.start(tmp, "fake", "unused", "tiny", environment=environment) as server:
        yield server


def post(server: runtime_server.RuntimeServer, path: str, content: bytes | str, **headers: str) -> httpx.Response:
    """A raw POST (the SDK would refuse to send most of these bodies)."""
    data = content.encode() if isinstance(content, str) else content
    return httpx.post(
        server.url + path, content=data, headers={"content-type": "application/json", **headers}, timeout=30
    )


def error_of(response: httpx.Response, status: int = 400) -> dict:
    """The OpenAI-shaped error of `response`, which must have `status`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def assert_serving(server: runtime_server.RuntimeServer) -> None:
    """The process is alive and still answers real work."""
    assert server.proc.poll() is None, server.output()
    reply = server.client().embeddings.create(model="tiny", input=["still here"])
    assert len(reply.data) == 1


def test_empty_embedding_inputs_are_400_naming_input(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    for value, where in (("", "input"), (["", "a"], "input[0]"), (["a", ""], "input[1]")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.embeddings.create(model="tiny", input=value)
        error = caught.value.response.json()["error"]
        assert error["param"] == "input" and error["code"] == "empty_input", error
        assert where in error["message"]
    assert_serving(fake_server)


def test_empty_rerank_query_or_document_is_400(fake_server: runtime_server.RuntimeServer) -> None:
    cases = [({"query": "", "documents": ["d"]}, "query"), ({"query": "q", "documents": ["d", ""]}, "documents")]
    for fields, param in cases:
        error = error_of(post(fake_server, "/v1/rerank", json.dumps({"model": "tiny", **fields})))
        assert error["param"] == param, error
    assert_serving(fake_server)


def test_empty_completion_prompt_is_served_as_openai_does(fake_server: runtime_server.RuntimeServer) -> None:
    reply = fake_server.client().completions.create(model="tiny", prompt="", max_tokens=3)
    assert reply.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", '{"model": "tiny", "input": ["ok", "bad \\ud800 text"]}', "input[1]"),
        ("/v1/embeddings", '{"model": "tiny", "input": "\\udc00"}', "input"),
        ("/v1/completions", '{"model": "tiny", "prompt": "x\\ud83dy"}', "prompt"),
        ("/v1/rerank", '{"model": "tiny", "query": "q", "documents": [{"text": "\\ud800"}]}', "documents[0].text"),
        (
            "/v1/chat/completions",
            '{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
            "messages[0].content[0].text",
        ),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(
    fake_server: runtime_server.RuntimeServer, path: str, body: str, param: str
) -> None:
    error = error_of(post(fake_server, path, body))
    assert error["param"] == param and error["code"] == "invalid_unicode", error
    assert_serving(fake_server)


def test_a_surrogate_pair_is_ordinary_text(fake_server: runtime_server.RuntimeServer) -> None:
    response = post(fake_server, "/v1/embeddings", '{"model": "tiny", "input": "smile \\ud83d\\ude00"}')
    assert response.status_code == 200, response.text


def test_deep_nesting_is_400_before_parsing(limited: runtime_server.RuntimeServer) -> None:
    deep = "[" * 5000 + "]" * 5000
    error = error_of(post(limited, "/v1/embeddings", f'{{"model": "tiny", "input": "a", "extra": {deep}}}'))
    assert error["code"] == "json_too_deep", error
    # Brackets inside strings are text, not nesting; nesting within the limit is fine.
    fine = '{"model": "tiny", "input": "[[[[[[[[[[[[[[[[[[[[", "extra": [[[[1]]]]}'
    assert post(limited, "/v1/embeddings", fine).status_code == 200
    assert_serving(limited)


def test_a_body_over_the_limit_is_413(limited: runtime_server.RuntimeServer) -> None:
    big = json.dumps({"model": "tiny", "input": "word " * 20_000})
    error = error_of(post(limited, "/v1/embeddings", big), 413)
    assert error["code"] == "request_too_large"
    assert_serving(limited)


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(
    limited: runtime_server.RuntimeServer,
) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):  # answered (and closed) without a byte of body sent
            received += chunk
    answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "request_too_large" in answer
    assert_serving(limited)


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"model": "tiny", "input": "a"',
        b"[1, 2, 3]",
        b'"just a string"',
        b"null",
        b"",
        b'{"model": "tiny", "input": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"model": "tiny", "input": "\xed\xa0\x80"}',  # a surrogate encoded as raw bytes
        b'{"model": "tiny", "input": "a", "dimensions": 1e400}',
        b'{"model": "tiny", "input": "a", "dimensions": NaN}',
        b'{"model": "tiny", "input": "a", "dimensions": 100000000000000000000000000000000000}',
        b'{"model": "tiny", "input": "a", "encoding_format": "hex"}',
        b'{"model": "tiny", "input": {"nested": "object"}}',
        b'{"model": 1e999, "input": "a"}',
    ],
)
def test_every_malformed_body_is_400(fake_server: runtime_server.RuntimeServer, content: bytes) -> None:
    error_of(post(fake_server, "/v1/embeddings", content))
    assert_serving(fake_server)


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/completions", {"prompt": "a", "max_tokens": 10**30}, "max_tokens"),
        ("/v1/completions", {"prompt": "a", "max_tokens": 2**31}, "max_tokens"),
        ("/v1/completions", {"prompt": "a", "max_tokens": 4096}, "prompt"),  # over the context: the engine's 400
        ("/v1/completions", {"prompt": "a", "n": 10**30}, "n"),
        ("/v1/completions", {"prompt": "a", "seed": 10**30}, "seed"),
        ("/v1/completions", {"prompt": "a", "temperature": 1e308}, "temperature"),
        ("/v1/completions", {"prompt": "a", "stop": ["x"] * 1000}, "stop"),
        ("/v1/completions", {"prompt": [1, 2, 10**12]}, "prompt"),
        ("/v1/completions", {"prompt": [[-1]]}, "prompt"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}], "max_tokens": 10**30}, "max_tokens"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "a"}], "max_completion_tokens": 10**10},
            "max_completion_tokens",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}], "seed": -(2**64)}, "seed"),
        ("/v1/embeddings", {"input": [10**12, -5]}, "input"),
        ("/v1/embeddings", {"input": [[]]}, "input"),
        ("/v1/embeddings", {"input": "a", "dimensions": 10**30}, "dimensions"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "top_n": 0}, "top_n"),
    ],
)
def test_absurd_numbers_and_token_ids_are_400_naming_the_parameter(
    fake_server: runtime_server.RuntimeServer, path: str, fields: dict, param: str
) -> None:
    error = error_of(post(fake_server, path, json.dumps({"model": "tiny", **fields})))
    assert error["param"] == param, error
    assert_serving(fake_server)


def test_list_sizes_are_capped(limited: runtime_server.RuntimeServer) -> None:
    client = limited.client()
    assert len(client.embeddings.create(model="tiny", input=["a"] * 4).data) == 4
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny", input=["a"] * 5)
    assert caught.value.response.json()["error"]["param"] == "input"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt=["a"] * 5, max_tokens=1)
    assert caught.value.response.json()["error"]["param"] == "prompt"
    error = error_of(post(limited, "/v1/rerank", json.dumps({"model": "tiny", "query": "q", "documents": ["d"] * 4})))
    assert error["param"] == "documents" and error["code"] == "too_many_inputs"


def test_images_per_request_are_capped_in_count_and_bytes(limited: runtime_server.RuntimeServer) -> None:
    client = limited.client()
    two = [{"role": "user", "content": [IMAGE, IMAGE, {"type": "text", "text": "look"}]}]
    assert client.chat.completions.create(model="tiny", messages=two, max_tokens=2).choices
    three = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "look"}, IMAGE, IMAGE]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=three, max_tokens=2)
    error = caught.value.response.json()["error"]
    assert error["param"] == "messages[0].content[3].image_url" and error["code"] == "too_many_images", error
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200).decode()
    heavy = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{big}"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=heavy, max_tokens=2)
    assert caught.value.response.json()["error"]["code"] == "images_too_large"
    assert_serving(limited)


def test_refusals_are_counted_in_the_metrics(limited: runtime_server.RuntimeServer) -> None:
    post(limited, "/v1/embeddings", json.dumps({"model": "tiny", "input": "x" * 70_000}))
    samples = limited.metrics()
    assert any(
        key.startswith("llmserver_requests_total{") and 'status="413"' in key and value >= 1
        for key, value in samples.items()
    ), samples
