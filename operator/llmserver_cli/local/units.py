"""One LLMServer in local mode: its published state plus the process that serves it, and the
steps that move it along (download, start, wait for /ready, stop). The supervisor decides *when*;
this module knows *how*."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import re
import socket
import time
from collections.abc import Callable

import aiohttp

import llmserver_api
from llmserver_cli.local import commands, manifests, process, sources, state


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on `host` (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Context:
    """What every unit step needs; built once by the supervisor."""

    python: str
    host: str
    cache_dir: pathlib.Path
    log_dir: pathlib.Path
    env: dict[str, str]
    ready_timeout: float
    http: aiohttp.ClientSession
    changed: Callable[[], None]


class LoadFailed(Exception):
    """A step failed; the message is shown as the server's error (no secrets in it)."""


class Unit:
    """One server: the state `list-loaded --local` shows, and its runtime process if any."""

    def __init__(self, manifest: manifests.Manifest) -> None:
        self.manifest = manifest
        spec = manifest.server.spec
        self.self_hosted = spec.mode == llmserver_api.Mode.SELF_HOSTED
        self.state = state.ServerState(
            name=manifest.name,
            model=spec.model,
            mode=spec.mode.value,
            backend=spec.backend.value if self.self_hosted else "-",
            capabilities=[capability.value for capability in spec.capabilities or []],
            upstream=spec.proxy.url if spec.proxy else None,
        )
        self.process: process.ManagedProcess | None = None
        self.task: asyncio.Task[None] | None = None
        self.wakeable = False  # unloaded by idle time or the LRU cap: the next request restarts it
        self.draining = False  # re-routed away, waiting for the gateway to re-read its config
        self.wanted = False  # a request arrived while draining

    @property
    def resident(self) -> bool:
        """True while a runtime process runs (starting or ready): it holds memory."""
        return self.process is not None and self.process.returncode is None

    def set(self, ctx: Context, phase: str, message: str = "") -> None:
        """Moves to `phase`, tells the supervisor (gateway config, state file, display)."""
        self.state.phase = phase
        self.state.message = message
        ctx.changed()

    def touch(self) -> None:
        """Records use now, for idle unload and the LRU order."""
        self.state.last_used = time.time()

    @property
    def base_url(self) -> str | None:
        """The runtime's base URL (without /v1) once a port is assigned."""
        return f"http://127.0.0.1:{self.state.port}" if self.state.port else None


PROGRESS = re.compile(r"\[bytes=(\d+)/(\d+|\?)\]")


def parse_progress(line: str) -> tuple[int, int | None] | None:
    """(bytes done, bytes total or None) from a downloader progress line (`... [bytes=D/T] ...`)."""
    match = PROGRESS.search(line)
    if match is None:
        return None
    return int(match.group(1)), None if match.group(2) == "?" else int(match.group(2))


async def download(unit: Unit, ctx: Context) -> None:
    """Runs the shared downloader for a Hugging Face source. It returns at once, without network,
    when the cache already holds a complete download, and resumes a partial one."""
    spec = unit.manifest.server.spec
    if spec.source is None or spec.source.hugging_face is None:
        return
    repo = spec.source.hugging_face.repo
    unit.set(ctx, "Downloading", f"{repo}: checking the cache")

    def on_line(line: str) -> None:
        progress = parse_progress(line)
        if progress is not None:
            unit.state.download_bytes, unit.state.download_total = progress
            unit.state.message = repo
            ctx.changed()

    proc = process.ManagedProcess(
        commands.download(ctx.python, unit.manifest.server, ctx.cache_dir),
        ctx.log_dir / f"{unit.state.name}.download.log",
        env=ctx.env,
        on_line=on_line,
    )
    await proc.start()
    try:
        code = await proc.wait()
    except asyncio.CancelledError:
        await proc.stop()
        raise
    target = sources.huggingface_path(unit.manifest.server, ctx.cache_dir)
    if code != 0 or not target.exists():
        recent = proc.tail(10).splitlines()
        said = next((line for line in reversed(recent) if line.startswith("download failed")), None)
        raise LoadFailed(said or f"download of {repo} failed (exit {code}): {' / '.join(recent[-3:]) or 'no output'}")


def child_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of local children. LLMSERVER_API_KEY is dropped: it would make the runtimes
    demand a key the local gateway does not send. The gateway re-reads its config often, so a model
    that became ready (or was unloaded) is routed accordingly within half a second."""
    env = {key: value for key, value in base.items() if key != "LLMSERVER_API_KEY"}
    env.setdefault("LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS", "0.5")
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start(unit: Unit, ctx: Context, attempts: int = 2) -> None:
    """Starts the runtime on a free loopback port and waits until its /ready says 200.

    The port is free when chosen but another process may take it before the runtime binds it;
    that one case is retried on a new port.
    """
    for attempt in range(attempts):
        try:
            await _start_once(unit, ctx)
            return
        except LoadFailed:
            recent = unit.process.tail(20).lower() if unit.process else ""
            if attempt + 1 == attempts or "address already in use" not in recent:
                raise
            await stop(unit)


async def _start_once(unit: Unit, ctx: Context) -> None:
    model_path = sources.model_path(unit.manifest.server, unit.manifest.origin, ctx.cache_dir)
    unit.state.port = free_port()
    unit.set(ctx, "Starting", f"loading {model_path.name}")
    argv = commands.serve(ctx.python, unit.manifest.server, model_path, "127.0.0.1", unit.state.port)
    unit.process = process.ManagedProcess(argv, ctx.log_dir / f"{unit.state.name}.log", env=ctx.env)
    await unit.process.start()
    unit.state.pid = unit.process.pid
    ctx.changed()
    deadline = time.monotonic() + ctx.ready_timeout
    while time.monotonic() < deadline:
        if unit.process.returncode is not None:
            raise LoadFailed(f"runtime exited with code {unit.process.returncode}: {unit.process.tail(3) or 'no output'}")
        if await http_ok(ctx.http, f"{unit.base_url}/ready"):
            unit.touch()
            unit.set(ctx, "Ready", f"serving on 127.0.0.1:{unit.state.port}")
            return
        await asyncio.sleep(0.25)
    raise LoadFailed(f"not ready after {ctx.ready_timeout:.0f}s (see {unit.process.log_path})")


async def http_ok(http: aiohttp.ClientSession, url: str) -> bool:
    """True when GET `url` answers 200 within 2 s (readiness and health probes)."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def stop(unit: Unit) -> None:
    """Stops the runtime (if any) and forgets its port."""
    proc, unit.process = unit.process, None
    if proc is not None:
        await proc.stop()
    unit.state.pid = None
    unit.state.port = None
