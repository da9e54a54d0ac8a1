"""The gateway routes POST /v1/responses by `model`, like chat: to a runtime's replicas, or, for
a Proxy model, to the provider's /v1/responses with the provider's model name. Bodies and event
streams pass through unchanged and still validate against OpenAI's published schema."""

from __future__ import annotations

import httpx
import openai
import pytest
from llmserver_gateway import balancing

from testkit import runtime_server
from testkit.openai_openapi import validate

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def runtimes(workdir):
    servers = [
        runtime_server.launch(workdir, "fake", "unused", "tiny", extra=["echo=true"]),
        runtime_server.launch(workdir, "fake", "unused", "upstream-x", extra=["echo=true"]),
    ]
    try:
        for server in servers:
            server.wait_ready(120)
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def gateway(runtimes, start_gateway):
    local, provider = runtimes
    proc, _ = start_gateway({"models": [
        {"name": "tiny", "endpoints": [{"url": local.url}], "policy": "PrefixHash"},
        {"name": "ext", "upstream": {"url": provider.url + "/v1", "model": "upstream-x"}},
    ]})  # fmt: skip
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    yield proc, client
    client.close()


def test_responses_are_routed_by_model(runtimes, gateway) -> None:
    proc, client = gateway
    via = client.responses.create(model="tiny", input="across the gateway", instructions="Echo.")
    direct = runtimes[0].client().responses.create(model="tiny", input="across the gateway", instructions="Echo.")
    assert via.output_text == direct.output_text == "across the gateway"
    assert via.usage == direct.usage
    raw = httpx.post(proc.url + "/v1/responses", json={"model": "tiny", "input": "raw"}, timeout=60)
    validate.check(raw.json(), validate.RESPONSE)


def test_streamed_events_pass_through(gateway) -> None:
    proc, client = gateway
    request = {"model": "tiny", "input": "one two three", "stream": True}
    with httpx.stream("POST", proc.url + "/v1/responses", json=request, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = validate.check_stream(response.iter_lines(), validate.RESPONSE_EVENT)
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three"
    assert events[-1]["type"] == "response.completed"
    with client.responses.stream(model="tiny", input="sdk stream") as stream:
        assert stream.get_final_response().output_text == "sdk stream"


def test_proxy_models_reach_the_providers_responses_endpoint(gateway) -> None:
    _, client = gateway
    response = client.responses.create(model="ext", input="to the provider")
    assert response.model == "upstream-x"  # the provider answered, under its own model name
    assert response.output_text == "to the provider"
    with client.responses.stream(model="ext", input="streamed upstream") as stream:
        assert stream.get_final_response().output_text == "streamed upstream"


def test_unknown_model_and_runtime_errors_keep_their_shape(gateway) -> None:
    _, client = gateway
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="nope", input="hi")
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="tiny", input="hi", previous_response_id="resp_1")
    body = refused.value.body
    assert (body["param"], body["code"]) == ("previous_response_id", "unsupported_parameter")


def test_prefix_hash_reads_a_responses_prompt() -> None:
    """Instructions then input items (or text) make the prefix key, as system + messages do."""
    parts = [{"type": "input_text", "text": "Hi"}]
    items = {"instructions": "You are terse.", "input": [{"role": "user", "content": parts}]}
    chat = {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]}
    assert balancing.prompt_prefix(items, 100) == balancing.prompt_prefix(chat, 100)
    text = {"instructions": "You are terse.", "input": "Hi"}
    assert balancing.prompt_prefix(text, 100) == balancing.prompt_prefix(chat, 100)
    assert balancing.prompt_prefix({"input": "Hi"}, 100) == "Hi"  # no instructions: the text itself
