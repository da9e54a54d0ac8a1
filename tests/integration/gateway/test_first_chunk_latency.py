"""The first streamed chunk leaves the gateway before the upstream sends the second.

A proxy that reads a fixed size before writing, holds a chunk until the next arrives, or misses a
flush, adds a whole token interval to time to first byte (issue 22 item 5). Here the upstream
sends one chunk and then waits until the client has received it through the gateway (or gives up
after a generous bound): a holding proxy never delivers it in time. Behaviour, not timing: the
bounds are seconds, far above any real forwarding time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

FIRST = b'data: {"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n'
SECOND = b'data: {"choices":[{"index":0,"delta":{"content":"second"}}]}\n\n'
HOLD_S = 20.0  # the upstream waits this long at most for the client to confirm the first chunk


class GatedUpstream:
    """An SSE upstream in a thread of the test: sends FIRST (after `delay` s, headers already
    out), then SECOND only once the test calls `release()` (or after HOLD_S)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.released = threading.Event()
        self.second_sent = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "upstream did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        await response.write(FIRST)
        await asyncio.get_running_loop().run_in_executor(None, self.released.wait, HOLD_S)
        self.second_sent.set()
        await response.write(SECOND)
        await response.write(b"data: [DONE]\n\n")
        return response

    def reset(self, delay: float) -> None:
        self.delay = delay
        self.released.clear()
        self.second_sent.clear()

    def close(self) -> None:
        self.released.set()
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def gated(start_gateway) -> Iterator[tuple[GatedUpstream, str]]:
    upstream = GatedUpstream()
    gateway, _ = start_gateway({"models": [{"name": "gated", "endpoints": [{"url": upstream.url}]}]})
    yield upstream, gateway.url
    upstream.close()


def _first_bytes_then_release(upstream: GatedUpstream, url: str) -> tuple[bytes, bool, bytes]:
    """Streams through `url`; returns the bytes of the first event, whether the upstream had sent
    SECOND by the time they arrived, and the rest of the stream (after releasing the upstream)."""
    body = {"model": "gated", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=HOLD_S * 2) as client, client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        head = b""
        while len(head) < len(FIRST):
            head += next(chunks)
        second_already_sent = upstream.second_sent.is_set()
        upstream.released.set()
        rest = b"".join(chunks)
    return head, second_already_sent, rest


@pytest.mark.parametrize("delay", [0.0, 0.2], ids=["with-headers", "after-headers"])
def test_first_chunk_is_forwarded_before_the_upstream_sends_the_second(gated, delay: float) -> None:
    upstream, gateway = gated
    upstream.reset(delay)
    head, second_already_sent, rest = _first_bytes_then_release(upstream, gateway + "/v1/chat/completions")
    assert head.startswith(FIRST)
    assert not second_already_sent, "the gateway held the first chunk until the upstream sent the next"
    assert (head + rest) == FIRST + SECOND + b"data: [DONE]\n\n"


def test_the_check_sees_a_first_chunk_delivered_after_the_second_was_sent(gated) -> None:
    """Control: an upstream that is not gated sends SECOND at once; once it has, the first chunk's
    arrival reads as 'second already sent', so the assertion above can fail."""
    upstream, gateway = gated
    upstream.reset(0.0)
    upstream.released.set()  # nothing holds SECOND back: it follows FIRST at once
    body = {"model": "gated", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=HOLD_S * 2) as client, client.stream(
        "POST", gateway + "/v1/chat/completions", json=body
    ) as response:
        assert upstream.second_sent.wait(HOLD_S)  # a holding proxy's first chunk arrives only now
        head = next(response.iter_raw())
        assert head.startswith(FIRST)
        assert upstream.second_sent.is_set()
