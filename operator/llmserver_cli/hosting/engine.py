"""The hosting lifecycle of every server on one host, shared by local mode and the Mac agent:
bring a server up (download -> runtime -> /ready), watch it, stop the least recently used when a
cap on count or memory says so, unload idle ones, and restart an unloaded one when a request for
it arrives. A server that fails is marked Failed with its error; the others keep serving.

Adapters add servers, call `track_usage` on their own tick and publish what `changed` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp

import llmserver_api
from llmserver_cli.hosting import activity, elastic, hosted, settings, sources, steps


def _no_runtime(unit: hosted.Hosted) -> str:
    raise hosted.LoadFailed(f"{unit.server.spec.mode.value} servers are not served here")


class Engine:
    """Owns the runtimes of one host. Use as `async with engine:` (opens its HTTP client; on the
    way out every runtime is stopped)."""

    def __init__(
        self,
        config: settings.EngineSettings,
        on_change: Callable[[], None],
        budget: settings.MemoryBudget | None = None,
        serve_without_runtime: Callable[[hosted.Hosted], str] = _no_runtime,
    ) -> None:
        """`serve_without_runtime` makes a proxy-mode server Ready: it returns the message to show
        or raises hosted.LoadFailed."""
        self.config = config
        self.units: dict[str, hosted.Hosted] = {}
        self.budget = budget
        self._on_change = on_change
        self._serve_without_runtime = serve_without_runtime
        self._capacity = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Engine:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop_all()
        finally:
            if self._http is not None:
                await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The client for probes and the wake-up proxy (only inside `async with`)."""
        if self._http is None:
            raise RuntimeError("the engine is not running (use `async with engine:`)")
        return self._http

    @http.setter
    def http(self, session: aiohttp.ClientSession) -> None:
        self._http = session

    # -- which servers ------------------------------------------------------------------------

    def add(self, key: str, server: llmserver_api.LLMServer, origin: sources.Origin) -> hosted.Hosted:
        """Tracks a server (Pending, not started: see `launch`)."""
        unit = hosted.Hosted(key=key, server=server, origin=origin, changed=self._on_change)
        self.units[key] = unit
        return unit

    async def remove(self, key: str) -> None:
        """Stops a server and forgets it (it moved away or its spec changed)."""
        unit = self.units.pop(key, None)
        if unit is not None:
            await self._halt(unit)
            self._on_change()

    # -- lifecycle of one server --------------------------------------------------------------

    def launch(self, unit: hosted.Hosted) -> None:
        """Starts bringing `unit` up in the background (no-op while it is already on its way)."""
        if unit.task is None or unit.task.done():
            unit.phase, unit.message = "Pending", "loading"
            unit.task = asyncio.create_task(self._bring_up(unit), name=f"bring-up-{unit.key}")
            self._on_change()

    def load(self, unit: hosted.Hosted) -> None:
        """Brings a server back (after an unload, a failure, or an idle unload)."""
        if unit.phase in ("Unloaded", "Failed") or unit.task is None:
            self.launch(unit)

    async def _bring_up(self, unit: hosted.Hosted) -> None:
        try:
            if not unit.self_hosted:
                unit.set("Ready", self._serve_without_runtime(unit))
                return
            await steps.download(unit, self.config)
            path = sources.model_path(unit.server, unit.origin, self.config.cache_dir)
            if not path.exists():
                raise hosted.LoadFailed(f"model path {path} does not exist on {self.config.where}")
            if self.budget is not None:
                unit.memory_bytes = self.budget.estimate(path)
            guard = self._capacity if self.config.max_loaded or self.budget else contextlib.nullcontext()
            async with guard:
                await self._make_room(unit)
                unit.wakeable = False
                await steps.start(unit, self.config, self.http, self._pick_port)
            proc = unit.process
            assert proc is not None
            code = await proc.wait()
            if unit.process is proc:  # not stopped by us: it crashed
                await self._fail(unit, f"runtime exited with code {code}: {proc.tail(3) or 'no output'}")
        except hosted.LoadFailed as error:
            await self._fail(unit, str(error))
        except asyncio.CancelledError:
            await steps.stop(unit)
            raise
        except Exception as error:  # noqa: BLE001 - one server's bug must not take the others down
            await self._fail(unit, f"{type(error).__name__}: {error}")

    async def _fail(self, unit: hosted.Hosted, message: str) -> None:
        await steps.stop(unit)
        unit.wakeable = False
        unit.set("Failed", message)

    def _pick_port(self) -> int:
        start = self.config.port_range_start
        if start is None:
            return steps.free_port()
        taken = {unit.port for unit in self.units.values() if unit.port}
        return steps.next_free_port(self.config.bind_host, start, taken)

    # -- eviction -------------------------------------------------------------------------------

    def _victim(self, unit: hosted.Hosted) -> tuple[hosted.Hosted, str] | None:
        """The least recently used Ready runtime to stop before `unit` loads, and why; or None."""
        others = [u for u in self.units.values() if u is not unit and u.resident]
        ready = sorted((u for u in others if u.phase == "Ready"), key=lambda u: u.last_used or 0.0)
        if not ready:
            return None  # nothing left to evict: load anyway, a failure is reported
        limit = self.config.max_loaded
        if limit and len(others) >= limit:
            return ready[0], f"unloaded to stay within --max-loaded {limit} (least recently used)"
        needed = unit.memory_bytes or 0
        if self.budget is not None and needed and self.budget.available() < needed:
            return ready[0], f"evicted (least recently used) to make room for {unit.key}"
        return None

    async def _make_room(self, unit: hosted.Hosted) -> None:
        """Stops least recently used models until `unit` fits the count cap and the memory."""
        while (found := self._victim(unit)) is not None:
            victim, reason = found
            await self.unload(victim, reason, wakeable=True)

    async def unload(self, unit: hosted.Hosted, reason: str, wakeable: bool, keep_if_used: bool = False) -> None:
        """Stops a server without forgetting it; `wakeable` ones restart on their next request
        (where the host wakes on request).

        A ready runtime is first marked Unloading (the adapter routes it away) and only stopped
        `drain_seconds` later, so no request is sent to a runtime that is gone. With
        `keep_if_used` (idle unload) a request arriving meanwhile cancels the unload.
        """
        wakeable = wakeable and unit.self_hosted and self.config.wake_on_request
        while unit.draining:
            await asyncio.sleep(0.1)
        if unit.phase == "Ready" and unit.resident:
            unit.wakeable, unit.wanted, unit.draining = wakeable, False, True
            unit.set("Unloading", reason)
            try:
                await asyncio.sleep(self.config.drain_seconds)
            finally:
                unit.draining = False
            if keep_if_used and unit.wanted and unit.resident:
                unit.touch()
                unit.set("Ready", f"serving on {self.config.bind_host}:{unit.port}")
                return
        unit.wakeable = wakeable
        await self._halt(unit)
        unit.set("Unloaded", reason + ("; starts on the next request" if wakeable else ""))

    async def _halt(self, unit: hosted.Hosted) -> None:
        """Cancels the bring-up (unless it is the caller) and stops the runtime."""
        task, unit.task = unit.task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await steps.stop(unit)

    async def ensure_loaded(self, unit: hosted.Hosted, timeout: float) -> bool:
        """For a wake-up proxy: (re)start `unit` if allowed, wait until Ready or given up."""
        unit.touch()
        if unit.draining:  # being unloaded: an idle unload is called off, an eviction finishes first
            unit.wanted = True
            while unit.draining:
                await asyncio.sleep(0.05)
        if unit.phase == "Ready":
            return True
        if unit.wakeable and (unit.task is None or unit.task.done()):
            self.launch(unit)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and unit.task is not None and not unit.task.done():
            if unit.phase == "Ready":
                return True
            await asyncio.sleep(0.1)
        return unit.phase == "Ready"

    def wake(self, unit: hosted.Hosted) -> bool:
        """For a gateway that holds requests itself: (re)starts `unit` if allowed and returns at
        once; True when it is Ready or on its way (an idle unload under way is called off)."""
        unit.touch()
        if unit.draining:
            unit.wanted = True
            return True
        if unit.phase == "Ready" or unit.loading:
            return True
        if unit.wakeable and (unit.task is None or unit.task.done()):
            self.launch(unit)
            return True
        return False

    # -- use ------------------------------------------------------------------------------------

    async def track_usage(self) -> None:
        """Learns use from each ready runtime's /metrics; unloads models idle past the setting."""
        for unit in list(self.units.values()):
            if not (unit.self_hosted and unit.phase == "Ready" and unit.base_url):
                continue
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                timeout = aiohttp.ClientTimeout(total=3)
                async with self.http.get(f"{unit.base_url}/metrics", timeout=timeout) as response:
                    current = activity.signature(await response.text())
                if activity.used_since(unit.usage, current):
                    unit.touch()
                unit.usage = current
            limit = self.idle_limit(unit)
            if limit is not None and unit.last_used is None and elastic.autoscaling(unit.server) is not None:
                unit.touch()  # an autoscaled model scales to zero unused too: its clock starts once Ready
            idle = time.time() - (unit.last_used or time.time())
            if limit is not None and idle >= limit:
                await self.unload(unit, f"idle for {idle:.0f}s", wakeable=True, keep_if_used=True)
                unit.usage = None

    def idle_limit(self, unit: hosted.Hosted) -> float | None:
        """Seconds unused before `unit` is unloaded (spec.autoscaling or the host's setting); None: never."""
        return elastic.idle_limit(unit.server, self.config.idle_unload, self.config.autoscaled_idle_unload)

    def shortest_idle_limit(self) -> float | None:
        """The smallest idle limit of any server (how often use must be polled); None when none has one."""
        limits = [limit for unit in self.units.values() if (limit := self.idle_limit(unit)) is not None]
        return min(limits) if limits else None

    async def stop_all(self) -> None:
        """Cancels every bring-up and stops every runtime (on the way out)."""
        tasks = [unit.task for unit in self.units.values() if unit.task is not None and not unit.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(steps.stop(unit) for unit in self.units.values()), return_exceptions=True)
