"""Admission control and cancellation: 429 beyond the queue with nothing lost among accepted
requests, and a client that goes away frees the engine at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

USER = [{"role": "user", "content": "hello"}]
CONCURRENCY, QUEUE = 2, 3
M = 'model="tiny"'


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    """20 ms per token, 2 running + 3 queued at most."""
    with runtime_server.start(
        tmp_path_factory.mktemp("slow"),
        "fake",
        "unused",
        "tiny",
        "--max-concurrency",
        str(CONCURRENCY),
        "--max-queue",
        str(QUEUE),
        extra=["delay_per_token=0.02", "stop_after=100000"],
    ) as server:
        yield server


def _wait_idle(server: runtime_server.RuntimeServer, timeout: float = 10.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        samples = server.metrics()
        if samples[f"llmserver_requests_in_flight{{{M}}}"] == 0 and samples[f"llmserver_queue_depth{{{M}}}"] == 0:
            return samples
        assert time.monotonic() < deadline, f"server still busy: {samples}"
        time.sleep(0.05)


def test_overload_gets_429_with_retry_after_and_accepted_requests_complete(slow: runtime_server.RuntimeServer) -> None:
    total, tokens = 12, 15

    async def one(client: openai.AsyncOpenAI) -> object:
        try:
            return await client.chat.completions.create(model="tiny", messages=USER, max_tokens=tokens)
        except openai.RateLimitError as exc:
            return exc

    async def burst() -> list[object]:
        client = slow.async_client()
        try:
            return await asyncio.gather(*(one(client) for _ in range(total)))
        finally:
            await client.close()

    results = asyncio.run(burst())
    accepted = [r for r in results if not isinstance(r, openai.RateLimitError)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(accepted) + len(refused) == total
    assert refused, "nothing was refused although 12 arrived for 2 slots + 3 queue places"
    assert len(accepted) >= CONCURRENCY + QUEUE
    for reply in accepted:
        assert reply.choices[0].finish_reason == "length"  # type: ignore[attr-defined]
        assert reply.usage.completion_tokens == tokens  # type: ignore[attr-defined]
    for exc in refused:
        assert exc.response.headers["retry-after"] == "1"
        assert exc.response.json()["error"]["code"] == "rate_limit_exceeded"
    samples = _wait_idle(slow)
    assert samples[f'llmserver_requests_total{{endpoint="chat",{M},status="429"}}'] == len(refused)
    assert samples[f"llmserver_max_concurrency{{{M}}}"] == CONCURRENCY


def test_stream_disconnect_cancels_generation(slow: runtime_server.RuntimeServer) -> None:
    before = _wait_idle(slow)
    completion_before = before[f"llmserver_completion_tokens_total{{{M}}}"]
    body = {"model": "tiny", "messages": USER, "max_tokens": 2000, "stream": True}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", slow.url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = 0
        for line in response.iter_lines():
            lines += line.startswith("data: ")
            if lines >= 5:
                break  # leaving the block closes the connection mid-stream
    started = time.monotonic()
    samples = _wait_idle(slow)
    assert time.monotonic() - started < 5, "the generation kept running after the client left"
    assert samples[f'llmserver_requests_total{{endpoint="chat",{M},status="499"}}'] >= 1
    generated = samples[f"llmserver_completion_tokens_total{{{M}}}"] - completion_before
    assert 4 <= generated < 200  # 2000 were asked for; it stopped soon after the client left


def test_non_stream_disconnect_cancels_generation(slow: runtime_server.RuntimeServer) -> None:
    before = _wait_idle(slow)
    body = {"model": "tiny", "messages": USER, "max_tokens": 2000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(slow.url + "/v1/chat/completions", json=body, timeout=0.5)  # 2000 tokens take 40 s
    samples = _wait_idle(slow)
    assert samples[f'llmserver_requests_total{{endpoint="chat",{M},status="499"}}'] > before.get(
        f'llmserver_requests_total{{endpoint="chat",{M},status="499"}}', 0
    )
    generated = (
        samples[f"llmserver_completion_tokens_total{{{M}}}"] - before[f"llmserver_completion_tokens_total{{{M}}}"]
    )
    assert 0 < generated < 200


def test_slot_is_free_again_after_disconnects(slow: runtime_server.RuntimeServer) -> None:
    _wait_idle(slow)
    started = time.monotonic()
    reply = slow.client().chat.completions.create(model="tiny", messages=USER, max_tokens=3)
    assert reply.usage.completion_tokens == 3
    assert time.monotonic() - started < 5
