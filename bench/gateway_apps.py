"""The two servers bench/gateway.py runs in child processes: the fake upstream and the bare proxy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

TOKENS = 20
PACE_S = 0.010
# The paced stream's first chunk carries `"bench_t":[received, sent]`: time.monotonic() when the
# upstream got the request and just before it wrote that chunk (one machine, one monotonic clock),
# so the load generator can take the upstream's own time, pacing jitter included, out of each TTFB.
STAMP_KEY = "bench_t"


# ------------------------------------------------------------------------------------ upstream
def upstream_app() -> web.Application:
    """A fake OpenAI chat endpoint: model `paced` streams 20 tokens 10 ms apart, others answer at once."""

    async def chat(request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        body = await request.json()
        model = body.get("model", "")
        paced = model.endswith("paced")
        if not body.get("stream"):
            if paced:
                await asyncio.sleep(PACE_S * TOKENS)
            return web.json_response({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok " * TOKENS},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": TOKENS + 5}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(TOKENS):
            if paced:
                await asyncio.sleep(PACE_S)
            chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                     "model": model, "choices": [{"index": 0, "delta": {"content": "tok "},
                                                  "finish_reason": "stop" if i == TOKENS - 1 else None}]}
            if paced and i == 0:
                chunk[STAMP_KEY] = [received, time.monotonic()]
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", health)
    return app


UPSTREAM_CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("upstream_client", aiohttp.ClientSession)


def bare_proxy_app(upstream: str) -> web.Application:
    """The Python floor for a proxy: one pooled aiohttp client, request and response bytes copied
    through unparsed (no auth, no routing, no metrics, no retries)."""

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[UPSTREAM_CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[UPSTREAM_CLIENT].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[UPSTREAM_CLIENT].post(
            upstream + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as up:
            response = web.StreamResponse(status=up.status,
                                          headers={"Content-Type": up.headers.get("Content-Type", "application/json")})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.cleanup_ctx.append(client)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/ready", ready)
    return app
