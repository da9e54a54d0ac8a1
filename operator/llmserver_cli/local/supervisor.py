"""Local mode's side of the hosting lifecycle: the servers of one `llmserver up` run on the shared
engine (hosting.engine); this adapter adds the gateway process, the loopback control endpoint
(load/unload, wake on request) and publishes every change as the gateway config, the state file
and the live table. It stops everything on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable

from llmserver_cli.hosting import argv, elastic, engine, process, settings as hosting_settings, steps
from llmserver_cli.local import control, gateway_config, manifests, proxy, routing, settings, state


@dataclasses.dataclass(frozen=True)
class Options:
    """The knobs of `llmserver up`."""

    host: str = "127.0.0.1"
    port: int = 8000
    idle_unload: float = 0.0  # seconds without requests before a model is stopped; 0 = never
    max_loaded: int = 0  # self-hosted models resident at once; 0 = no cap
    ready_timeout: float = 600.0  # per model load
    gateway_timeout: float = 60.0


class GatewayFailed(Exception):
    """The gateway could not start or died: local mode cannot serve anything without it."""


class Supervisor:
    """Owns every child process of one `llmserver up`."""

    def __init__(
        self,
        loaded: list[manifests.Manifest],
        paths: settings.LocalSettings,
        options: Options,
        python: str = sys.executable,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.paths = paths
        self.options = options
        self.python = python
        self.env = steps.child_env(dict(os.environ if environ is None else environ))
        self.token = secrets.token_urlsafe(24)
        self.control_url: str | None = None
        self.on_change: Callable[[state.LocalState], None] | None = None
        # jobs run beside the servers once they are booted, cancelled first on the way out
        # (the local set's follower, the cache-in-use publisher)
        self.background: list[Callable[[], Awaitable[None]]] = []
        self._gateway: process.ManagedProcess | None = None
        # the gateway re-reads its config every poll interval: wait two of them (and a margin)
        # between re-routing a model and stopping its runtime
        poll = float(self.env.get("LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS", "1") or 1)
        config = hosting_settings.EngineSettings(
            python=python, cache_dir=paths.cache_dir, log_dir=paths.log_dir, env=self.env,
            ready_timeout=options.ready_timeout, idle_unload=options.idle_unload, max_loaded=options.max_loaded,
            wake_on_request=True, drain_seconds=2 * poll + 0.5,
        )  # fmt: skip
        self.engine = engine.Engine(config, self.changed, serve_without_runtime=proxy.readiness(self.env))
        for manifest in loaded:
            self.engine.add(manifest.name, manifest.server, manifest.origin)

    @property
    def gateway_url(self) -> str:
        """Where clients send requests (the OpenAI base URL is this plus /v1)."""
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "::") else self.options.host
        return f"http://{host}:{self.options.port}"

    def snapshot(self) -> state.LocalState:
        """The state file's content."""
        return state.LocalState(
            pid=os.getpid(),
            gateway_url=self.gateway_url,
            control_url=self.control_url,
            token=self.token,
            servers=[state.server_state(unit) for unit in self.engine.units.values()],
        )

    def changed(self) -> None:
        """Called on every state change: rewrite the gateway config and state file, redraw."""
        routes = routing.routes(list(self.engine.units.values()), self.control_url)
        gateway_config.write(self.paths.gateway_config, gateway_config.build(routes))
        snapshot = self.snapshot()
        state.write(self.paths.state_file, snapshot)
        if self.on_change is not None:
            self.on_change(snapshot)

    async def _start_gateway(self) -> None:
        command = argv.gateway(self.python, self.paths.gateway_config, self.options.host, self.options.port)
        self._gateway = process.ManagedProcess(command, self.paths.log_dir / "gateway.log", env=self.env)
        await self._gateway.start()
        deadline = time.monotonic() + self.options.gateway_timeout
        while time.monotonic() < deadline:
            self._check_gateway()
            if await steps.http_ok(self.engine.http, f"http://127.0.0.1:{self.options.port}/health"):
                return
            await asyncio.sleep(0.2)
        waited = self.options.gateway_timeout
        raise GatewayFailed(f"gateway not answering on port {self.options.port} after {waited:.0f}s")

    def _check_gateway(self) -> None:
        if self._gateway is not None and self._gateway.returncode is not None:
            raise GatewayFailed(f"gateway exited with code {self._gateway.returncode}: {self._gateway.tail(3)}")

    async def run(self, stop: asyncio.Event) -> None:
        """Serves until `stop` is set; raises GatewayFailed if the gateway cannot run."""
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        async with self.engine:
            runner, self.control_url = await control.start(self, self.engine.http)
            jobs: list[asyncio.Task[None]] = []
            try:
                self.changed()
                await self._start_gateway()
                self._boot()
                jobs = [asyncio.create_task(job()) for job in self.background]
                while not stop.is_set():
                    idle = self.engine.shortest_idle_limit()  # --idle-unload, or an autoscaled model's delay
                    interval = min(5.0, max(0.5, idle / 4)) if idle is not None else 5.0
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
                    self._check_gateway()
                    if idle is not None or self.options.max_loaded:
                        await self.engine.track_usage()
            finally:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                await self.engine.stop_all()
                if self._gateway is not None:
                    await self._gateway.stop()
                await runner.cleanup()
                state.remove(self.paths.state_file, os.getpid())

    def _boot(self) -> None:
        """Starts every server, except `replicas: 0` ones (unloaded, as in a cluster, until
        `load-model`); beyond --max-loaded, self-hosted ones wait for their first request."""
        started = 0
        for unit in self.engine.units.values():
            if elastic.park_at_start(unit):
                continue
            if unit.self_hosted and self.options.max_loaded and started >= self.options.max_loaded:
                unit.wakeable = True
                unit.set("Unloaded", f"not loaded (--max-loaded {self.options.max_loaded}); starts on the next request")
                continue
            started += unit.self_hosted
            self.engine.launch(unit)
