"""Small OpenAI-shaped upstreams for gateway tests and benchmarks, run as real processes.

`python -m testkit.fake_upstreams --port P --name A` serves /v1/chat/completions, /v1/completions,
/v1/embeddings, /v1/rerank, /v1/models, /health and /ready. Answers name the replica (content
"A-0 A-1 ..."), so a test can tell which replica served a request. Per-request behaviour comes
from an extra body field `fake` (sent with the SDK's `extra_body`):
  {"chunks": 20, "delay_ms": 10, "status": 503, "abort_after": 2, "sleep_ms": 100}
`--require-key K` makes it a provider that answers 401 unless `Authorization: Bearer K`;
`--served-model M` makes it answer 404 for other model names; `--status 503` answers every
request with that status (a broken replica). GET /fake/stats reports what it saw
(requests per path, models, whether auth matched, streams cut by the client).
Also: helpers to start such processes and the gateway, and wait for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from testkit import ports

REPO = pathlib.Path(__file__).resolve().parents[2]


class Stats:
    """What the fake upstream observed."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.models: list[str] = []
        self.auth_ok = 0
        self.auth_bad = 0
        self.disconnected = 0
        self.completed_streams = 0
        self.in_flight = 0
        self.max_in_flight = 0


def build_app(name: str, require_key: str | None = None, served_model: str | None = None,
              api_key: str | None = None, status: int | None = None) -> web.Application:
    """The fake's aiohttp app."""
    stats = Stats()
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        stats.requests += 1
        stats.by_path[request.path] = stats.by_path.get(request.path, 0) + 1
        needed = require_key or api_key
        if needed is not None:
            if request.headers.get("Authorization") != f"Bearer {needed}":
                stats.auth_bad += 1
                return _error(401, "fake upstream: wrong or missing key", "invalid_api_key")
            stats.auth_ok += 1
        body = await request.json()
        model = body.get("model")
        stats.models.append(model)
        if served_model is not None and model != served_model:
            return _error(404, f"fake upstream: unknown model {model}", "model_not_found")
        fake = body.get("fake") or {}
        if status:
            return _error(status, f"fake upstream {name} always answers {status}", "fake")
        if fake.get("sleep_ms"):
            await asyncio.sleep(fake["sleep_ms"] / 1000)
        if fake.get("status"):
            return _error(int(fake["status"]), f"fake upstream {name} answers {fake['status']}", "fake")
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if request.path == "/v1/embeddings":
                return web.json_response({"object": "list", "model": model, "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.5, float(len(name))]}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            if request.path == "/v1/rerank":
                docs = body.get("documents") or []
                return web.json_response({"id": f"rerank-{name}", "model": model, "results": [
                    {"index": i, "relevance_score": 1.0 / (i + 1)} for i in range(len(docs))],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            chunks = int(fake.get("chunks", 3))
            words = [f"{name}-{i}" for i in range(chunks)]
            chat = request.path == "/v1/chat/completions"
            if body.get("stream"):
                return await _stream(request, stats, name, model, words, chat, fake)
            text = " ".join(words)
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if chat else {"index": 0, "text": text, "finish_reason": "stop"})
            return web.json_response({
                "id": f"cmpl-{name}", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": model, "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks + 1}})
        finally:
            stats.in_flight -= 1

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": served_model or name, "object": "model", "created": 0, "owned_by": "fake"}]})

    async def stats_view(request: web.Request) -> web.Response:
        return web.json_response(vars(stats))

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "name": name})

    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank",
                 "/chat/completions", "/completions", "/embeddings", "/rerank"):
        app.router.add_post(path, handle)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/fake/stats", stats_view)
    app.router.add_get("/health", ok)
    app.router.add_get("/ready", ok)
    return app


async def _stream(request: web.Request, stats: Stats, name: str, model: str, words: list[str], chat: bool,
                  fake: dict[str, Any]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    delay = float(fake.get("delay_ms", 0)) / 1000
    abort_after = fake.get("abort_after")
    try:
        for i, word in enumerate(words):
            if abort_after is not None and i >= int(abort_after):
                assert request.transport is not None
                request.transport.abort()  # a crashed replica: the connection drops mid-stream
                return response
            if delay:
                await asyncio.sleep(delay)
            piece = word if i == 0 else " " + word
            if chat:
                chunk = {"id": f"chatcmpl-{name}", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            else:
                chunk = {"id": f"cmpl-{name}", "object": "text_completion", "created": 0, "model": model,
                         "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        stats.completed_streams += 1
    except (ConnectionError, asyncio.CancelledError):
        stats.disconnected += 1
        raise
    return response


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "fake_error", "param": None, "code": code}},
                             status=status)


# ----------------------------------------------------------------------------- process helpers


def python_env(**extra: str) -> dict[str, str]:
    """Env for child processes: tests/ on PYTHONPATH so `testkit` imports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wait_http(url: str, proc: Proc | None = None, timeout: float = 30.0) -> None:
    """Blocks until GET `url` answers 200; raises with the log tail if `proc` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"process exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    tail = proc.output()[-3000:] if proc is not None else ""
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{tail}")


class Proc:
    """A child process with its base URL; `stop()` ends it (by pid) and reaps it."""

    def __init__(self, args: Sequence[str], port: int, log: pathlib.Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = open(log, "ab")
        self.popen = subprocess.Popen(list(args), stdout=self._log_file, stderr=subprocess.STDOUT,
                                      env=env or python_env(), cwd=REPO, start_new_session=True)

    def wait_ready(self, path: str = "/health", timeout: float = 30.0) -> None:
        """Blocks until GET `path` answers 200; raises with the log tail if the process died."""
        wait_http(self.url + path, self, timeout)

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: a crashed replica."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(OSError):
            self._log_file.close()


def start_fake(tmp: pathlib.Path, name: str, *extra: str, port: int | None = None, wait: bool = True) -> Proc:
    """A fake upstream process named `name` (`wait=False`: call `wait_ready()` yourself)."""
    port = port or ports.free_port()
    args = [sys.executable, "-m", "testkit.fake_upstreams", "--port", str(port), "--name", name, *extra]
    proc = Proc(args, port, tmp / f"fake-{name}-{port}.log")
    if wait:
        proc.wait_ready()
    return proc


@dataclasses.dataclass(frozen=True)
class Replica:
    """One fake replica (its own port and stats) inside a shared fake process."""

    name: str
    url: str
    proc: Proc


def start_fakes(tmp: pathlib.Path, *names: str, extra: Sequence[str] = ()) -> dict[str, Replica]:
    """Several replicas served by ONE process (one port each): starting Python once is much cheaper.

    Use `start_fake` for a replica that a test kills on its own.
    """
    replica_ports = {name: ports.free_port() for name in names}
    args = [sys.executable, "-m", "testkit.fake_upstreams", *extra]
    for name, port in replica_ports.items():
        args += ["--replica", f"{name}:{port}"]
    proc = Proc(args, replica_ports[names[0]], tmp / f"fakes-{'-'.join(names)}.log")
    replicas = {name: Replica(name, f"http://127.0.0.1:{port}", proc) for name, port in replica_ports.items()}
    proc.wait_ready()
    for replica in replicas.values():
        wait_http(replica.url + "/health", proc)
    return replicas


def stop_all(procs: Sequence[Proc]) -> None:
    """SIGTERM to all first, then reap each: shutting down in parallel."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.stop()


def start_gateway(tmp: pathlib.Path, *args: str, env: dict[str, str] | None = None, ready: str = "/health") -> Proc:
    """`python -m llmserver_gateway ARGS --host 127.0.0.1 --port P`."""
    port = ports.free_port()
    cmd = [sys.executable, "-m", "llmserver_gateway", *args, "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc(cmd, port, tmp / f"gateway-{port}.log", env=python_env(**(env or {})))
    try:
        proc.wait_ready(ready)
    except BaseException:
        proc.stop()  # the caller never gets it to stop: a gateway that never got ready must not outlive the test
        raise
    return proc


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the fake upstream process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--replica", action="append", default=[], metavar="NAME:PORT",
                        help="serve one more replica (own port, own stats) from this process")
    parser.add_argument("--require-key", default=None, help="provider mode: the key it expects")
    parser.add_argument("--api-key", default=None, help="runtime with LLMSERVER_API_KEY (Mac)")
    parser.add_argument("--served-model", default=None)
    parser.add_argument("--status", type=int, default=None, help="answer every request with this status")
    ns = parser.parse_args(argv)
    replicas = [(ns.name, ns.port)] if ns.port else []
    for spec in ns.replica:
        name, _, port = spec.rpartition(":")
        replicas.append((name, int(port)))
    if not replicas:
        parser.error("give --port or at least one --replica NAME:PORT")
    asyncio.run(_serve(replicas, ns))


async def _serve(replicas: list[tuple[str, int]], ns: argparse.Namespace) -> None:
    runners = []
    for name, port in replicas:
        runner = web.AppRunner(build_app(name, ns.require_key, ns.served_model, ns.api_key, ns.status),
                               access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    main()
