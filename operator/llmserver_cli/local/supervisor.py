"""The local control loop: brings every server up (download → runtime → /ready), keeps the
gateway config in step with what is ready, unloads idle models, keeps at most N resident (LRU),
restarts an unloaded model when a request for it arrives, and stops everything on the way out.

A server that fails is marked Failed with its error; the others keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import sys
import time
from collections.abc import Callable

import aiohttp

from llmserver_cli.local import (
    activity,
    commands,
    control,
    gateway_config,
    manifests,
    process,
    routing,
    settings,
    sources,
    state,
    units,
)


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
        self.units = {manifest.name: units.Unit(manifest) for manifest in loaded}
        self.paths = paths
        self.options = options
        self.python = python
        self.env = units.child_env(dict(os.environ if environ is None else environ))
        self.token = secrets.token_urlsafe(24)
        self.control_url: str | None = None
        self.on_change: Callable[[state.LocalState], None] | None = None
        self._gateway: process.ManagedProcess | None = None
        self._ctx: units.Context | None = None
        self._capacity = asyncio.Lock()
        # the gateway re-reads its config every poll interval: wait two of them (and a margin)
        # between re-routing a model and stopping its runtime
        poll = float(self.env.get("LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS", "1") or 1)
        self.drain_seconds = 2 * poll + 0.5

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
            servers=[unit.state.model_copy() for unit in self.units.values()],
        )

    # -- publishing -------------------------------------------------------------------------

    def changed(self) -> None:
        """Called on every state change: rewrite the gateway config and state file, redraw."""
        routes = routing.routes(list(self.units.values()), self.control_url)
        gateway_config.write(self.paths.gateway_config, gateway_config.build(routes))
        snapshot = self.snapshot()
        state.write(self.paths.state_file, snapshot)
        if self.on_change is not None:
            self.on_change(snapshot)

    # -- lifecycle of one server ------------------------------------------------------------

    def launch(self, unit: units.Unit) -> None:
        """Starts bringing `unit` up in the background (no-op while it is already on its way)."""
        if unit.task is None or unit.task.done():
            unit.state.phase, unit.state.message = "Pending", "loading"
            unit.task = asyncio.create_task(self._bring_up(unit), name=f"bring-up-{unit.state.name}")
            self.changed()

    async def _bring_up(self, unit: units.Unit) -> None:
        ctx = self._ctx
        assert ctx is not None
        try:
            if not unit.self_hosted:
                self._check_proxy(unit)
                unit.set(ctx, "Ready", f"forwarding to {unit.state.upstream}")
                return
            await units.download(unit, ctx)
            guard = self._capacity if self.options.max_loaded else contextlib.nullcontext()
            async with guard:
                await self._make_room(unit)
                unit.wakeable = False
                await units.start(unit, ctx)
            proc = unit.process
            assert proc is not None
            code = await proc.wait()
            if unit.process is proc:  # not stopped by us: it crashed
                await units.stop(unit)
                unit.wakeable = False
                unit.set(ctx, "Failed", f"runtime exited with code {code}: {proc.tail(3) or 'no output'}")
        except units.LoadFailed as error:
            await units.stop(unit)
            unit.wakeable = False
            unit.set(ctx, "Failed", str(error))
        except asyncio.CancelledError:
            await units.stop(unit)
            raise
        except Exception as error:  # noqa: BLE001 - one server's bug must not take the others down
            await units.stop(unit)
            unit.wakeable = False
            unit.set(ctx, "Failed", f"{type(error).__name__}: {error}")

    def _check_proxy(self, unit: units.Unit) -> None:
        proxy = unit.manifest.server.spec.proxy
        ref = proxy.api_key_secret_ref if proxy else None
        if ref is not None:
            env_name = sources.api_key_env(ref.key)
            if not self.env.get(env_name):
                raise units.LoadFailed(
                    f"API key missing: set env {env_name} (local mode reads apiKeySecretRef key {ref.key!r} from it)"
                )

    async def _make_room(self, unit: units.Unit) -> None:
        """Under --max-loaded N, stops the least recently used ready model(s) to make room."""
        limit = self.options.max_loaded
        while limit:
            others = [u for u in self.units.values() if u is not unit and u.resident]
            if len(others) < limit:
                return
            ready = [u for u in others if u.state.phase == "Ready"]
            if not ready:
                return
            victim = min(ready, key=lambda u: u.state.last_used or 0.0)
            await self.unload(victim, f"unloaded to stay within --max-loaded {limit} (least recently used)", wakeable=True)

    async def unload(self, unit: units.Unit, reason: str, wakeable: bool, keep_if_used: bool = False) -> None:
        """Stops a server without forgetting it; `wakeable` ones restart on their next request.

        A ready runtime is first taken out of the gateway's config (to the wake-up proxy, or to
        no endpoint) and only stopped once the gateway has re-read it, so no request is sent to
        a runtime that is gone. With `keep_if_used` (idle unload) a request arriving meanwhile
        cancels the unload.
        """
        assert self._ctx is not None
        while unit.draining:
            await asyncio.sleep(0.1)
        if unit.state.phase == "Ready" and unit.resident:
            unit.wakeable = wakeable and unit.self_hosted
            unit.wanted = False
            unit.draining = True
            unit.set(self._ctx, "Unloading", reason)
            try:
                await asyncio.sleep(self.drain_seconds)
            finally:
                unit.draining = False
            if keep_if_used and unit.wanted and unit.resident:
                unit.touch()
                unit.set(self._ctx, "Ready", f"serving on 127.0.0.1:{unit.state.port}")
                return
        task, unit.task = unit.task, None
        unit.wakeable = wakeable and unit.self_hosted
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await units.stop(unit)
        suffix = "; starts on the next request" if unit.wakeable else ""
        unit.set(self._ctx, "Unloaded", reason + suffix)

    def load(self, unit: units.Unit) -> None:
        """Brings a server back (after unload-model, a failure, or an idle unload)."""
        if unit.state.phase in ("Unloaded", "Failed") or unit.task is None:
            self.launch(unit)

    async def ensure_loaded(self, unit: units.Unit, timeout: float) -> bool:
        """For the wake-up proxy: (re)start `unit` if allowed, wait until Ready or given up."""
        unit.touch()
        if unit.draining:  # being unloaded: an idle unload is called off, an eviction finishes first
            unit.wanted = True
            while unit.draining:
                await asyncio.sleep(0.05)
        if unit.state.phase == "Ready":
            return True
        if unit.wakeable and (unit.task is None or unit.task.done()):
            self.launch(unit)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and unit.task is not None and not unit.task.done():
            if unit.state.phase == "Ready":
                return True
            await asyncio.sleep(0.1)
        return unit.state.phase == "Ready"

    # -- the loop ---------------------------------------------------------------------------

    async def _idle_tick(self, previous: dict[str, tuple[float, float]]) -> None:
        assert self._ctx is not None
        for unit in list(self.units.values()):
            if not (unit.self_hosted and unit.state.phase == "Ready" and unit.base_url):
                continue
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                async with self._ctx.http.get(f"{unit.base_url}/metrics", timeout=aiohttp.ClientTimeout(total=3)) as r:
                    current = activity.signature(await r.text())
                if activity.used_since(previous.get(unit.state.name), current):
                    unit.touch()
                previous[unit.state.name] = current
            idle = time.time() - (unit.state.last_used or time.time())
            if self.options.idle_unload and idle >= self.options.idle_unload:
                await self.unload(unit, f"idle for {idle:.0f}s", wakeable=True, keep_if_used=True)
                previous.pop(unit.state.name, None)

    async def _start_gateway(self) -> None:
        assert self._ctx is not None
        argv = commands.gateway(self.python, self.paths.gateway_config, self.options.host, self.options.port)
        self._gateway = process.ManagedProcess(argv, self.paths.log_dir / "gateway.log", env=self.env)
        await self._gateway.start()
        deadline = time.monotonic() + self.options.gateway_timeout
        while time.monotonic() < deadline:
            if self._gateway.returncode is not None:
                raise GatewayFailed(f"gateway exited with code {self._gateway.returncode}: {self._gateway.tail(3)}")
            if await units.http_ok(self._ctx.http, f"http://127.0.0.1:{self.options.port}/health"):
                return
            await asyncio.sleep(0.2)
        raise GatewayFailed(f"gateway not answering on port {self.options.port} after {self.options.gateway_timeout:.0f}s")

    async def run(self, stop: asyncio.Event) -> None:
        """Serves until `stop` is set; raises GatewayFailed if the gateway cannot run."""
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        async with aiohttp.ClientSession() as http:
            self._ctx = units.Context(
                python=self.python, host="127.0.0.1", cache_dir=self.paths.cache_dir, log_dir=self.paths.log_dir,
                env=self.env, ready_timeout=self.options.ready_timeout, http=http, changed=self.changed,
            )  # fmt: skip
            runner, self.control_url = await control.start(self, http)
            try:
                self.changed()
                await self._start_gateway()
                self._boot()
                previous: dict[str, tuple[float, float]] = {}
                interval = min(5.0, max(0.5, self.options.idle_unload / 4)) if self.options.idle_unload else 5.0
                while not stop.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
                    if self._gateway is not None and self._gateway.returncode is not None:
                        raise GatewayFailed(f"gateway exited with code {self._gateway.returncode}: {self._gateway.tail(3)}")
                    if self.options.idle_unload or self.options.max_loaded:
                        await self._idle_tick(previous)
            finally:
                await self._shutdown(runner)

    def _boot(self) -> None:
        """Starts every server, except `replicas: 0` ones (unloaded, as in a cluster, until
        `load-model`); beyond --max-loaded, self-hosted ones wait for their first request."""
        assert self._ctx is not None
        started = 0
        for unit in self.units.values():
            if unit.manifest.server.spec.replicas == 0:
                unit.set(self._ctx, "Unloaded", f"spec.replicas is 0; `llmserver load-model {unit.state.name} --local` loads it")
                continue
            if unit.self_hosted and self.options.max_loaded and started >= self.options.max_loaded:
                unit.wakeable = True
                unit.set(self._ctx, "Unloaded", f"not loaded (--max-loaded {self.options.max_loaded}); starts on the next request")
                continue
            started += unit.self_hosted
            self.launch(unit)

    async def _shutdown(self, runner: control.Runner) -> None:
        tasks = [unit.task for unit in self.units.values() if unit.task is not None and not unit.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(units.stop(unit) for unit in self.units.values()), return_exceptions=True)
        if self._gateway is not None:
            await self._gateway.stop()
        await runner.cleanup()
        state.remove(self.paths.state_file, os.getpid())
