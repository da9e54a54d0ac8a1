"""The gateway in front of real runtime processes (`llmserver-runtime serve --backend fake`).

The fake backend is deterministic, so every answer through the gateway must equal the answer the
runtime gives directly: the gateway passes bodies and streams through unchanged, keeps the
runtime's own errors, sends a Mac runtime its key, and survives a killed replica.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from testkit import runtime_server

pytestmark = pytest.mark.timeout(240)

MAC_KEY = "mac-runtime-key-3131"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three winds."}]


@pytest.fixture(scope="module")
def runtimes(workdir):
    servers = [
        runtime_server.launch(workdir, "fake", "unused", "tiny", extra=["delay_per_token=0.01"]),
        runtime_server.launch(workdir, "fake", "unused", "tiny", extra=["delay_per_token=0.01"]),
        runtime_server.launch(workdir, "fake", "unused", "mac-model",
                              environment=runtime_server.env(LLMSERVER_API_KEY=MAC_KEY)),
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
    first, second, mac = runtimes
    proc, _ = start_gateway({"models": [
        {"name": "tiny", "endpoints": [{"url": first.url}, {"url": second.url}]},
        {"name": "mac-model", "endpoints": [{"url": mac.url, "apiKey": MAC_KEY}]},
    ]})
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    yield proc, client
    client.close()


def test_chat_and_completions_equal_the_direct_answer(runtimes, gateway) -> None:
    _, client = gateway
    direct = runtimes[0].client()
    via = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, seed=7)
    same = direct.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, seed=7)
    assert via.choices[0].message.content == same.choices[0].message.content
    assert via.usage == same.usage
    text = client.completions.create(model="tiny", prompt="Once upon", max_tokens=8, seed=3)
    assert text.choices[0].text == direct.completions.create(model="tiny", prompt="Once upon", max_tokens=8,
                                                             seed=3).choices[0].text


def test_streaming_through_the_gateway_matches_and_arrives_incrementally(gateway) -> None:
    _, client = gateway
    whole = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=20, seed=1)
    spans = []
    # A gateway that buffers makes every attempt arrive at once; a busy machine that stalls this
    # client for a moment makes one attempt look bunched. So: the same stream, up to three times.
    for _ in range(3):
        arrivals, pieces = [], []
        for chunk in client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=20, seed=1, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
                pieces.append(chunk.choices[0].delta.content)
        assert "".join(pieces) == whole.choices[0].message.content
        assert len(pieces) > 5
        spans.append(arrivals[-1] - arrivals[0])
        if spans[-1] > 0.05:  # 10 ms per token at the runtime
            break
    assert max(spans) > 0.05, spans


def test_embeddings_and_rerank_pass_through(runtimes, gateway) -> None:
    proc, client = gateway
    via = client.embeddings.create(model="tiny", input=["red river", "blue ocean"])
    same = runtimes[1].client().embeddings.create(model="tiny", input=["red river", "blue ocean"])
    assert [d.embedding for d in via.data] == [d.embedding for d in same.data]
    body = {"model": "tiny", "query": "red river", "documents": ["blue ocean", "red river delta"]}
    via_rerank = httpx.post(proc.url + "/v1/rerank", json=body, timeout=30).json()
    direct_rerank = httpx.post(runtimes[0].url + "/v1/rerank", json=body, timeout=30).json()
    assert via_rerank["results"] == direct_rerank["results"]


def test_the_runtimes_own_errors_pass_through(gateway) -> None:
    _, client = gateway
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=CHAT, temperature=5)
    assert caught.value.body["param"] == "temperature"


def test_mac_runtime_gets_its_key(runtimes, gateway) -> None:
    _, client = gateway
    reply = client.chat.completions.create(model="mac-model", messages=CHAT, max_tokens=4)
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):  # the runtime really requires the key
        runtimes[2].client().chat.completions.create(model="mac-model", messages=CHAT, max_tokens=4)


def test_a_killed_runtime_is_routed_around(runtimes, workdir, start_gateway) -> None:
    # A runtime of its own to kill, beside a shared one, behind a gateway of its own: the shared
    # runtimes stay up for the other tests, whatever order they run in.
    victim = runtime_server.launch(workdir, "fake", "unused", "tiny")
    try:
        victim.wait_ready(120)
        proc, _ = start_gateway({"models": [
            {"name": "tiny", "endpoints": [{"url": victim.url}, {"url": runtimes[1].url}]}]})
        client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        victim.proc.kill()
        victim.proc.wait(10)
        for seed in range(6):
            reply = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=4, seed=seed)
            assert reply.choices[0].message.content
        client.close()
    finally:
        victim.stop()
