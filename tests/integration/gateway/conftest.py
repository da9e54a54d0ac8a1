"""Fixtures for the gateway's integration tests: fake replicas and gateways as real processes."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from aiohttp import web

from testkit import fake_upstreams

# Short timeouts and a fast config poll, so failure paths and reloads resolve quickly in tests.
GATEWAY_ENV = {
    "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2",
    "LLMSERVER_GATEWAY_READ_TIMEOUT": "20",
    "LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS": "0.1",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def start_fakes(workdir: pathlib.Path) -> Iterator[Callable[..., dict[str, fake_upstreams.Replica]]]:
    """Starts fake replicas (one process per call); all are stopped when the module ends."""
    started: list[fake_upstreams.Proc] = []

    def start(*names: str, extra: tuple[str, ...] = ()) -> dict[str, fake_upstreams.Replica]:
        replicas = fake_upstreams.start_fakes(workdir, *names, extra=extra)
        started.append(next(iter(replicas.values())).proc)
        return replicas

    yield start
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def start_fake(workdir: pathlib.Path) -> Iterator[Callable[..., fake_upstreams.Proc]]:
    """One fake replica in its own process (for tests that kill it)."""
    started: list[fake_upstreams.Proc] = []

    def start(name: str, *extra: str) -> fake_upstreams.Proc:
        proc = fake_upstreams.start_fake(workdir, name, *extra)
        started.append(proc)
        return proc

    yield start
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def run_gateway(workdir: pathlib.Path) -> Iterator[Callable[..., fake_upstreams.Proc]]:
    """Starts `llmserver-gateway ARGS` (test env added); all are stopped when the module ends."""
    started: list[fake_upstreams.Proc] = []

    def run(*args: str, env: dict[str, str] | None = None, ready: str = "/health") -> fake_upstreams.Proc:
        proc = fake_upstreams.start_gateway(workdir, *args, env={**GATEWAY_ENV, **(env or {})}, ready=ready)
        started.append(proc)
        return proc

    yield run
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def start_gateway(
    workdir: pathlib.Path, run_gateway: Callable[..., fake_upstreams.Proc]
) -> Callable[..., tuple[fake_upstreams.Proc, pathlib.Path]]:
    """Writes a static config and starts `llmserver-gateway --config` on it."""
    count = [0]

    def start(config: dict, env: dict[str, str] | None = None, *args: str) -> tuple[fake_upstreams.Proc, pathlib.Path]:
        count[0] += 1
        path = workdir / f"gateway-{count[0]}.yaml"
        path.write_text(yaml.safe_dump(config))
        return run_gateway("--config", str(path), *args, env=env), path

    return start


class Listener:
    """An aiohttp server in a thread of the test process that records every request it gets.

    `behaviour` answers POSTs: "ok" (a small chat completion), "trickle" (an SSE stream sending one
    chunk every `gap` seconds for a minute), "big" (an SSE stream of 1 KiB chunks without end)."""

    def __init__(self, host: str, behaviour: str, gap: float = 0.5) -> None:
        self.host = host
        self.behaviour = behaviour
        self.gap = gap
        self.requests: list[dict[str, Any]] = []  # method, path, headers, body of each request
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "listener did not start"
        self.url = f"http://{host}:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, self.host, 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                              "body": body})
        if self.behaviour == "ok":
            return web.json_response({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": "fine"}}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        if self.behaviour == "big":
            chunk = b"data: " + b"x" * 1024 + b"\n\n"
        deadline = self.loop.time() + 60
        while self.loop.time() < deadline:
            await response.write(chunk)
            await asyncio.sleep(self.gap if self.behaviour == "trickle" else 0)
        return response

    def close(self) -> None:
        """Stops the server and its thread."""
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def listen() -> Iterator[Callable[..., Listener]]:
    """Starts `Listener`s (on 127.0.0.x addresses: all of 127/8 is loopback); closed with the module."""
    started: list[Listener] = []

    def start(behaviour: str = "ok", host: str = "127.0.0.1", gap: float = 0.5) -> Listener:
        started.append(Listener(host, behaviour, gap))
        return started[-1]

    yield start
    for listener in started:
        listener.close()
