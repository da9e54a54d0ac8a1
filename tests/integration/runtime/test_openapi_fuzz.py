"""Requests generated from OpenAI's published API document (schemathesis + hypothesis) against
real `serve` processes: chat, completions, embeddings and responses, with `model` pinned to the
served name so that requests get past routing. Whatever a client may send by the document, the
runtime never answers 5xx, never dies, answers errors in OpenAI's shape, and every 200 body or
stream event validates against the document's response schemas.

Bounded to finish in about a minute on two busy cores: a few dozen examples per operation on the
fake engine and fewer on llama.cpp, where token budgets (`max_tokens`, `n`, ...) are capped so
that a generated `max_tokens: 100000` does not spend the test's time generating."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from testkit import runtime_server
from testkit.models import tiny_gguf  # noqa: F401 - session fixture
from testkit.openai_openapi import validate

pytestmark = pytest.mark.timeout(600)

# path -> (whole body schema, stream event schema)
OPERATIONS = {
    "/chat/completions": (validate.CHAT, validate.CHAT_CHUNK),
    "/completions": (validate.COMPLETION, validate.COMPLETION_CHUNK),
    "/embeddings": (validate.EMBEDDING, None),
    "/responses": (validate.RESPONSE, validate.RESPONSE_EVENT),
}
# path -> the token budget fields capped on a real engine (the first is set when none is)
BUDGETS = {
    "/chat/completions": ("max_completion_tokens", "max_tokens"),
    "/completions": ("max_tokens",),
    "/embeddings": (),
    "/responses": ("max_output_tokens",),
}


@pytest.fixture(scope="module")
def schema() -> Any:
    return schemathesis.openapi.from_dict(validate.document())


# path -> (the input field, a valid value): the "repaired" variant of each generated request keeps
# every other generated field, so sampling, format and tool fields reach generation too.
VALID_INPUT = {
    "/chat/completions": ("messages", [{"role": "user", "content": "hi"}]),
    "/completions": ("prompt", "hi"),
    "/embeddings": ("input", "hi"),
    "/responses": ("input", "hi"),
}


@pytest.fixture(scope="module", params=["fake", "llama-cpp"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, runtime_server.RuntimeServer]]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "fake":
        args: tuple[str, ...] = ("fake", "unused", "tiny")
    else:
        gguf = request.getfixturevalue("tiny_gguf")
        engine = ("--capabilities", "TextGeneration,Embeddings", "--n-ctx", "256", "--n-threads", "2")
        args = ("llama-cpp", gguf, "tiny", *engine)
    with runtime_server.start(tmp, *args) as running:
        yield request.param, running


def _variants(path: str, body: Any, cheap: bool) -> list[Any]:
    """The generated body (served model pinned), and the same with a valid input and only
    identifier-like top-level keys; on a real engine, token budgets capped at 8 and n at 2."""
    if not isinstance(body, dict):
        return [body]
    field, value = VALID_INPUT[path]
    repaired = {key: item for key, item in body.items() if key.isidentifier()}
    variants = [dict(body, model="tiny"), dict(repaired, model="tiny", **{field: value})]
    if cheap:
        for variant in variants:
            for name in BUDGETS[path]:
                if isinstance(variant.get(name), int) and variant[name] > 8:
                    variant[name] = 8
            if BUDGETS[path] and not any(isinstance(variant.get(name), int) for name in BUDGETS[path]):
                variant[BUDGETS[path][0]] = 8
            if isinstance(variant.get("n"), int) and variant["n"] > 2:
                variant["n"] = 2
    return variants


def _check_error(response: httpx.Response) -> None:
    error = json.loads(response.content).get("error")
    assert isinstance(error, dict) and isinstance(error.get("message"), str), response.content
    assert set(error) >= {"message", "type", "param", "code"}, response.content


def _send(server: runtime_server.RuntimeServer, path: str, body: Any) -> int:
    whole_schema, event_schema = OPERATIONS[path]
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with httpx.stream("POST", f"{server.url}/v1{path}", content=payload, headers=headers, timeout=120) as response:
        content = response.read()
    assert response.status_code < 500, f"{response.status_code} for {payload[:500]!r}: {content[:500]!r}"
    if response.status_code != 200:
        _check_error(response)
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert event_schema is not None
        validate.check_stream(content.decode().splitlines(), event_schema)
    elif isinstance(body, dict) and body.get("encoding_format") == "base64":
        validate.check(json.loads(content), validate.EMBEDDING_BASE64)
    else:
        validate.check(json.loads(content), whole_schema)
    return response.status_code


@pytest.mark.parametrize("path", list(OPERATIONS))
def test_generated_requests_never_break_the_server(
    server: tuple[str, runtime_server.RuntimeServer], schema: Any, path: str
) -> None:
    engine, running = server
    cheap = engine != "fake"
    statuses: list[int] = []

    @hypothesis.settings(
        max_examples=8 if cheap else 20, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate],
    )  # fmt: skip
    @hypothesis.given(case=schema[path]["POST"].as_strategy())
    def run(case: Any) -> None:
        statuses.extend(_send(running, path, body) for body in _variants(path, case.body, cheap))

    run()
    assert running.proc.poll() is None, running.output()[-3000:]
    assert runtime_server.get(running.url + "/health")[0] == 200
    assert 200 in statuses, f"no generated request succeeded: {statuses}"  # the 200 checks ran
