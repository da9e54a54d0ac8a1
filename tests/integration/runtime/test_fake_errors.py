"""Every error the server answers, in OpenAI's shape, seen through the official SDK."""

from __future__ import annotations

import base64
import pathlib
from collections.abc import Iterator

import httpx
import openai
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

USER = [{"role": "user", "content": "hello"}]
KEY = "test-key-123"


def _error(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    """Text only, with an API key, a 1 s request timeout and slow tokens."""
    tmp: pathlib.Path = tmp_path_factory.mktemp("restricted")
    environment = runtime_server.env(LLMSERVER_API_KEY=KEY, LLMSERVER_REQUEST_TIMEOUT="1")
    with runtime_server.start(
        tmp,
        "fake",
        "unused",
        "tiny",
        "--capabilities",
        "TextGeneration",
        extra=["delay_per_token=0.02", "stop_after=1000"],
        environment=environment,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    """An engine that fails after two tokens."""
    with runtime_server.start(
        tmp_path_factory.mktemp("broken"), "fake", "unused", "tiny", extra=["fail_after_tokens=2"]
    ) as server:
        yield server


def test_unknown_model_is_404_with_param_model(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    calls = [
        lambda: client.chat.completions.create(model="gpt-x", messages=USER),
        lambda: client.completions.create(model="gpt-x", prompt="a"),
        lambda: client.embeddings.create(model="gpt-x", input="a"),
        lambda: client.post("/rerank", body={"model": "gpt-x", "query": "q", "documents": ["d"]}, cast_to=object),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        error = _error(caught.value)
        assert (error["param"], error["code"]) == ("model", "model_not_found")
        assert "gpt-x" in error["message"]


def test_validation_errors_are_400_naming_the_field(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=USER, temperature=7)
    assert _error(caught.value)["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=[])
    assert _error(caught.value)["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "wizard", "content": "x"}])
    assert _error(caught.value)["param"] == "messages[0].role"
    url, json_type = fake_server.url + "/v1/chat/completions", {"content-type": "application/json"}
    response = httpx.post(url, content=b"{not json", headers=json_type, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["message"] == "The request body is not valid JSON."
    response = httpx.post(url, content=b"[1, 2]", headers=json_type, timeout=10)
    assert (
        response.status_code == 400 and response.json()["error"]["message"] == "The request body must be a JSON object."
    )


def test_context_length_exceeded_is_400(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=USER, max_tokens=5000)
    error = _error(caught.value)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "maximum context length is 2048" in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="word " * 2100, stream=True)
    assert (_error(caught.value)["code"], _error(caught.value)["param"]) == ("context_length_exceeded", "prompt")


def test_unsupported_options_are_refused_by_name(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    for kwargs, param in (
        ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="tiny", messages=USER, **kwargs)
        assert _error(caught.value)["param"] == param
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt=[1, 2, 3])
    assert _error(caught.value)["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny", input="a", dimensions=7)
    assert _error(caught.value)["param"] == "dimensions"


def test_bad_images_are_400_naming_the_part(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    cases = {
        "data:image/png;base64,@@@": "invalid_image",
        "data:image/png;base64," + base64.b64encode(b"not an image").decode(): "invalid_image",
        "https://example.invalid/cat.png": "remote_images_disabled",
    }
    for url, code in cases.items():
        content = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": content}])
        error = _error(caught.value)
        assert (error["param"], error["code"]) == ("messages[0].content[1].image_url", code)


def test_unknown_route_and_method_are_openai_shaped(fake_server: runtime_server.RuntimeServer) -> None:
    response = httpx.post(fake_server.url + "/v1/nope", json={}, timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
    response = httpx.get(fake_server.url + "/v1/chat/completions", timeout=10)
    assert response.status_code == 405 and "error" in response.json()


def test_missing_capabilities_are_400_naming_them(restricted: runtime_server.RuntimeServer) -> None:
    client = restricted.client(api_key=KEY)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="tiny", input="a")
    assert "Embeddings" in _error(caught.value)["message"]
    assert _error(caught.value)["code"] == "capability_not_supported"
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", body={"model": "tiny", "query": "q", "documents": ["d"]}, cast_to=object)
    assert "Rerank" in _error(caught.value)["message"]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": content}])
    error = _error(caught.value)
    assert "Vision" in error["message"] and error["param"] == "messages[0].content[0].image_url"


def test_api_key_is_required_on_v1_only(restricted: runtime_server.RuntimeServer) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        restricted.client(api_key="wrong").models.list()
    error = _error(caught.value)
    assert error["code"] == "invalid_api_key" and KEY not in error["message"]
    unauthenticated = httpx.post(restricted.url + "/v1/chat/completions", json={"model": "tiny", "messages": USER})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["code"] == "invalid_api_key"
    assert [m.id for m in restricted.client(api_key=KEY).models.list().data] == ["tiny"]
    assert runtime_server.get(restricted.url + "/health")[0] == 200
    assert runtime_server.get(restricted.url + "/ready")[0] == 200
    assert runtime_server.get(restricted.url + "/metrics")[0] == 200
    assert KEY not in restricted.output()


def test_request_timeout_is_504_or_a_stream_error(restricted: runtime_server.RuntimeServer) -> None:
    client = restricted.client(api_key=KEY)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", messages=USER, max_tokens=200)
    assert caught.value.status_code == 504 and _error(caught.value)["code"] == "timeout"
    stream = client.chat.completions.create(model="tiny", messages=USER, max_tokens=200, stream=True)
    received = 0
    with pytest.raises(openai.APIError, match="timed out"):
        for chunk in stream:
            received += len(chunk.choices)
    assert 0 < received < 200
    samples = restricted.metrics()
    assert samples['llmserver_requests_total{endpoint="chat",model="tiny",status="504"}'] == 2
    assert samples['llmserver_requests_in_flight{model="tiny"}'] == 0


def test_engine_failure_is_500_without_internals(broken: runtime_server.RuntimeServer) -> None:
    client = broken.client()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="tiny", messages=USER, max_tokens=10)
    error = _error(caught.value)
    assert error["type"] == "server_error" and "internal detail" not in error["message"]
    stream = client.chat.completions.create(model="tiny", messages=USER, max_tokens=10, stream=True)
    texts: list[str] = []
    with pytest.raises(openai.APIError) as caught_stream:
        for chunk in stream:
            texts.extend(c.delta.content or "" for c in chunk.choices)
    assert "internal detail" not in str(caught_stream.value)
    assert len("".join(texts).split()) == 2
    assert "fake engine failure" in broken.output()  # the cause is logged for operators
    assert broken.metrics()['llmserver_requests_total{endpoint="chat",model="tiny",status="500"}'] == 2
