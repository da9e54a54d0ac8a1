"""The steps that move one hosted server along: download, start a runtime on a port and wait for
its /ready, stop it. The engine decides *when*; this module knows *how*."""

from __future__ import annotations

import asyncio
import pathlib
import re
import socket
import time
from collections.abc import Callable

import aiohttp

import llmserver_api.sources
from llmserver_cli.hosting import argv, hosted, process, settings, sources
from llmserver_operator.builders import download as download_builders

PROGRESS = re.compile(r"\[bytes=(\d+)/(\d+|\?)\]")


def child_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of children. LLMSERVER_API_KEY is dropped: it would make a local runtime
    demand a key the local gateway does not send (the Mac agent adds its own key back). The
    gateway re-reads its config often, so a model that became ready (or was unloaded) is routed
    accordingly within half a second."""
    env = {key: value for key, value in base.items() if key != "LLMSERVER_API_KEY"}
    env.setdefault("LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS", "0.5")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parse_progress(line: str) -> tuple[int, int | None] | None:
    """(bytes done, bytes total or None) from a downloader progress line (`... [bytes=D/T] ...`)."""
    match = PROGRESS.search(line)
    if match is None:
        return None
    return int(match.group(1)), None if match.group(2) == "?" else int(match.group(2))


def last_words(proc: process.ManagedProcess) -> str:
    """Why a runtime ended: its own `... failed: ...` line (e.g. an adapter it refused at load) when
    it logged one, else its last lines (a load failure is followed by uvicorn's shutdown lines)."""
    recent = proc.tail(20).splitlines()
    said = next((line for line in reversed(recent) if " failed: " in line), None)
    return said or proc.tail(3) or "no output"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on `host` (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """True when `port` on `host` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def next_free_port(host: str, start: int, taken: set[int]) -> int:
    """The first port from `start` that no other runtime holds and that is free on `host`."""
    port = start
    while port in taken or not port_free(host, port):
        port += 1
    return port


async def http_ok(http: aiohttp.ClientSession, url: str) -> bool:
    """True when GET `url` answers 200 within 2 s (readiness and health probes)."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def download(unit: hosted.Hosted, config: settings.EngineSettings) -> None:
    """Runs the shared downloader for a Hugging Face, S3 or URL source: the model's, then each
    downloaded adapter's. It returns at once, without network, when the cache already holds a
    complete download, and resumes a partial one."""
    spec = unit.server.spec
    if spec.source is not None and spec.source.pvc is None:
        report = ["--report-to", unit.key] if config.report_downloads else []
        target = sources.downloaded_path(unit.server, config.cache_dir)
        await _fetch(unit, config, spec.source, target, report, unit.log_name)
    unit.adapter_failures.clear()
    unit.adapter_progress.clear()
    for adapter in spec.adapters:
        if adapter.source.pvc is None:
            target = sources.adapter_path(adapter, unit.origin, config.cache_dir)
            unit.adapter = adapter.name
            try:
                await _fetch(unit, config, adapter.source, target, [], f"{unit.log_name}.adapter-{adapter.name}")
            except hosted.LoadFailed as error:
                if not config.adapter_failures_alone:
                    raise
                unit.adapter_failures[adapter.name] = str(error)  # the model starts without it
            finally:
                unit.adapter = None


async def _fetch(
    unit: hosted.Hosted,
    config: settings.EngineSettings,
    source: llmserver_api.sources.Source,
    target: pathlib.Path,
    extra: list[str],
    log_name: str,
) -> None:
    repo = (source.hugging_face.repo if source.hugging_face else
            download_builders.s3_uri(source.s3) if source.s3 else source.url.url if source.url else "model")  # fmt: skip
    unit.set("Downloading", f"{repo}: checking the cache")

    def on_line(line: str) -> None:
        progress = parse_progress(line)
        if progress is not None:
            unit.download_bytes, unit.download_total = progress
            if unit.adapter is not None:
                unit.adapter_progress[unit.adapter] = progress
            unit.message = repo
            unit.changed()

    command = argv.download_source(config.python, download_builders.source_args(source), config.cache_dir) + extra
    proc = process.ManagedProcess(
        command, config.log_dir / f"{log_name}.download.log",
        env=child_env(config.env if config.download_env is None else config.download_env), on_line=on_line
    )
    await proc.start()
    try:
        code = await proc.wait()
    except asyncio.CancelledError:
        await proc.stop()
        raise
    if code != 0 or not target.exists():
        recent = proc.tail(10).splitlines()
        said = next((line for line in reversed(recent) if line.startswith("download failed")), None)
        raise hosted.LoadFailed(
            said or f"download of {repo} failed (exit {code}): {' / '.join(recent[-3:]) or 'no output'}"
        )


async def start(
    unit: hosted.Hosted,
    config: settings.EngineSettings,
    http: aiohttp.ClientSession,
    pick_port: Callable[[], int],
    attempts: int = 2,
) -> None:
    """Starts the runtime on a free port and waits until its /ready says 200.

    The port is free when chosen but another process may take it before the runtime binds it;
    that one case is retried on a new port.
    """
    for attempt in range(attempts):
        try:
            await _start_once(unit, config, http, pick_port())
            return
        except hosted.LoadFailed:
            recent = unit.process.tail(20).lower() if unit.process else ""
            if attempt + 1 == attempts or "address already in use" not in recent:
                raise
            await stop(unit)


async def _start_once(
    unit: hosted.Hosted, config: settings.EngineSettings, http: aiohttp.ClientSession, port: int
) -> None:
    model_path = sources.model_path(unit.server, unit.origin, config.cache_dir)
    unit.port = port
    unit.set("Starting", f"loading {model_path.name}")
    adapters = [(adapter.name, str(sources.adapter_path(adapter, unit.origin, config.cache_dir)))
                for adapter in unit.server.spec.adapters if adapter.name not in unit.adapter_failures]  # fmt: skip
    command = argv.serve(config.python, unit.server, model_path, config.bind_host, port, adapters)
    unit.process = process.ManagedProcess(command, config.log_dir / f"{unit.log_name}.log", env=config.env)
    await unit.process.start()
    unit.changed()
    deadline = time.monotonic() + config.ready_timeout
    while time.monotonic() < deadline:
        if unit.process.returncode is not None:
            code, tail = unit.process.returncode, last_words(unit.process)
            raise hosted.LoadFailed(f"runtime exited with code {code}: {tail}")
        if await http_ok(http, f"{unit.base_url}/ready"):
            unit.touch()
            unit.set("Ready", f"serving on {config.bind_host}:{port}")
            return
        await asyncio.sleep(0.25)
    raise hosted.LoadFailed(f"not ready after {config.ready_timeout:.0f}s (see {unit.process.log_path})")


async def stop(unit: hosted.Hosted) -> None:
    """Stops the runtime (if any) and forgets its port."""
    proc, unit.process = unit.process, None
    if proc is not None:
        await proc.stop()
    unit.port = None
