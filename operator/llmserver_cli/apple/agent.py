"""The Mac agent: registers an AppleNode, heartbeats through a Lease, and runs the mlx / mlx-vlm
runtimes of the LLMServers the operator placed on this Mac on the shared hosting engine
(hosting.engine), reporting each one's state and port in the AppleNode's status.

It never decides placement: it serves what `status.placement.node` says and stops what moved away.
Runtimes require a per-node API key (kept in a Secret the gateway reads), because a Mac's ports are
reachable from more than the cluster, and start with a clean environment (hosting.clean_env): never
the agent's kubeconfig, Hugging Face token or cloud credentials. The agent acts as its node's own
ServiceAccount (apple.identity in the operator; `llmserver agent-credentials`), whose token it
refreshes before it expires (token_refresh), and relays download progress and status.adapters
(adapter_report) to the LLMServer itself so that no child needs API credentials. Unified memory is the scarce resource: before a model loads,
least-recently-used models are stopped until it fits, and idle ones can be unloaded on a timer.

spec.replicas is 0 or 1 on a Mac: 0 unloads the runtime (the server stays listed as Unloaded) and
1 loads it again, without a restart for any other change of replicas or of spec.autoscaling. An
autoscaled server is never unloaded by the agent's idle timer: the operator's autoscaler scales it
to zero through spec.replicas (hosting.elastic).

The API server may go away (an upgrade, a network cut) while the Mac keeps serving: every API call
is retried with capped backoff, the heartbeat runs on its own task (a slow sync never delays it),
and the runtimes stay loaded and answering through the outage; only `stop` unloads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import pathlib
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import llmserver_api
from llmserver_cli.apple import adapter_report, agent_settings, system, token_refresh
from llmserver_cli.hosting import clean_env, engine, hosted, settings as hosting_settings, sources
from llmserver_operator import kube as kube_mod
from llmserver_operator.apple import leases, placement, publishing

log = logging.getLogger("llmserver.agent")
Manifest = dict[str, Any]
# AppleNode.status.models[].state has no Pending or Unloading: a server waiting to load is
# Starting; one being unloaded is no longer served.
REPORTED_STATE = {"Pending": "Starting", "Unloading": "Unloaded"}
RETRY_FIRST_SECONDS = 0.5  # first wait after a failed API call; doubled per failure up to the cap


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Backoff:
    """Capped exponential backoff with jitter (so many Macs do not retry in step after an outage)."""

    def __init__(self, cap: float, first: float = RETRY_FIRST_SECONDS, jitter: Callable[[], float] = random.random) -> None:
        self.cap, self.first, self.jitter = cap, min(first, cap), jitter
        self.failures = 0

    def next_delay(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        delay = min(self.cap, self.first * 2 ** min(self.failures - 1, 30))
        return delay * (0.5 + 0.5 * self.jitter())

    def reset(self) -> None:
        self.failures = 0


def model_memory_bytes(path: pathlib.Path) -> int:
    """The memory a model at `path` takes once loaded: the operator's own estimate."""
    if path.is_file():
        files = {path.name: path.stat().st_size}
    else:
        files = {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return placement.estimate_memory_bytes(files, config)


def model_report(unit: hosted.Hosted) -> dict[str, Any]:
    """The entry of AppleNode.status.models for one hosted server."""
    entry = {"server": unit.key, "model": unit.model, "state": REPORTED_STATE.get(unit.phase, unit.phase),
             "port": unit.port, "memoryBytes": unit.memory_bytes, "message": unit.message[:500]}
    return {k: v for k, v in entry.items() if v is not None}


def engine_settings(settings: agent_settings.AgentSettings, api_key: str,
                    environ: dict[str, str] | None = None) -> hosting_settings.EngineSettings:
    """The hosting engine's knobs on a Mac: ports in order from the node's range, eviction by
    memory, no wake on request (an unloaded model reloads on its next spec change), autoscaled
    servers left to spec.replicas, clean child environments, and no `--report-to` (the agent relays
    download progress itself)."""
    base = dict(os.environ if environ is None else environ)
    return hosting_settings.EngineSettings(
        python=settings.python, cache_dir=settings.cache_dir, log_dir=settings.log_dir,
        env=clean_env.runtime_env(base, api_key), download_env=clean_env.download_env(base),
        ready_timeout=settings.ready_timeout, bind_host=settings.bind_host,
        port_range_start=settings.port_range_start, idle_unload=settings.idle_unload_seconds,
        autoscaled_idle_unload=False, report_downloads=False, where=settings.node_name,
        adapter_failures_alone=True,
    )  # fmt: skip


def runtime_fingerprint(server: llmserver_api.LLMServer) -> str:
    """What the runtime is started from: the spec without replicas and autoscaling, whose changes
    load or unload it but never restart it."""
    wire = server.spec.to_wire()
    for field in ("replicas", "autoscaling"):
        wire.pop(field, None)
    return json.dumps(wire, sort_keys=True)


def download_report(unit: hosted.Hosted) -> dict[str, Any] | None:
    """The LLMServer status.download patch for a unit that is downloading its model (None otherwise:
    an adapter's progress goes to its status.adapters entry)."""
    if unit.phase != "Downloading" or unit.download_bytes is None or unit.adapter is not None:
        return None
    download: dict[str, Any] = {"bytesDone": unit.download_bytes, "message": unit.message[:500]}
    if unit.download_total is not None:
        download["bytesTotal"] = unit.download_total
    return {"download": download}


class AppleAgent:
    """Runs until `stop` is set; every API call goes through the operator's `kube.Kube` in a thread."""

    def __init__(self, settings: agent_settings.AgentSettings, kube: kube_mod.Kube,
                 refresher: token_refresh.TokenRefresher | None = None,
                 clock: Callable[[], datetime.datetime] = _utc_now) -> None:
        self.settings = settings
        self.kube = kube
        self.refresher = refresher
        self.clock = clock  # the Mac's wall clock, written into renewTime (the operator never trusts it)
        self.heartbeats = 0  # Lease renewals that succeeded
        self._relayed: dict[str, Any] = {}
        self.api_key = secrets.token_urlsafe(32)
        budget = hosting_settings.MemoryBudget(estimate=model_memory_bytes,
                                               available=lambda: system.available_memory_bytes())
        self.engine = engine.Engine(engine_settings(settings, self.api_key), self._changed, budget=budget)
        self.fingerprints: dict[str, str] = {}  # per hosted server: runtime_fingerprint of its spec
        self.replicas: dict[str, int] = {}  # per hosted server: the spec.replicas last seen
        self.placed: dict[str, llmserver_api.LLMServer] = {}  # per server placed here: its spec, last listed
        self.held_adapters: dict[str, Any] = {}  # per server placed here: status.adapters as the API holds it
        self._reported: Any = None
        self._report_lock = asyncio.Lock()
        self._adapters_lock = asyncio.Lock()  # sync and the change reporter relay adapters one at a time
        self._dirty = asyncio.Event()

    async def _api(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.kube, method), *args)

    # --- registration and heartbeat ----------------------------------------------------------
    async def register(self) -> None:
        """Creates or updates this Mac's AppleNode and the Secret holding the runtimes' API key."""
        s = self.settings
        memory = s.unified_memory or str(system.total_memory_bytes())
        spec = llmserver_api.AppleNodeSpec(
            address=s.address, chip=system.chip(), unified_memory=memory, reserved_memory=s.reserved_memory,
            os=system.os_description(), backends=system.runnable_backends() or ["mlx", "mlx-vlm"],
            port_range_start=s.port_range_start,
        ).to_wire()
        await self._upsert({"apiVersion": llmserver_api.API_VERSION, "kind": "AppleNode",
                            "metadata": {"name": s.node_name}, "spec": spec})
        await self._upsert({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": publishing.key_secret_name(s.node_name), "namespace": s.namespace},
                            "stringData": {publishing.API_KEY_SECRET_KEY: self.api_key}})
        log.info("registered AppleNode %s (%s, %s)", s.node_name, spec["chip"], memory)

    async def _upsert(self, obj: Manifest) -> None:
        meta = obj["metadata"]
        current = await self._api("get", obj["kind"], meta.get("namespace"), meta["name"])
        if current is None:
            await self._api("create", obj)
            return
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if "status" in current:
            obj["status"] = current["status"]
        await self._api("replace", obj)

    async def heartbeat(self) -> None:
        """Renews the Lease (creating it on first beat), as a kubelet renews its node Lease."""
        s = self.settings
        now = leases.format_micro_time(self.clock())
        await self._upsert({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": leases.lease_name(s.node_name), "namespace": s.namespace},
            "spec": {"holderIdentity": s.node_name, "leaseDurationSeconds": s.lease_seconds, "renewTime": now},
        })

    # --- models --------------------------------------------------------------------------------
    async def placed_here(self) -> dict[str, tuple[llmserver_api.LLMServer, int | None]]:
        """The servers whose status.placement names this node (with their generation)."""
        wanted = {}
        for raw in await self._api("list", "LLMServer", None):
            if ((raw.get("status") or {}).get("placement") or {}).get("node") != self.settings.node_name:
                continue
            try:
                server = llmserver_api.LLMServer.model_validate(raw)
            except ValueError:
                continue
            meta = raw["metadata"]
            key = f"{meta.get('namespace') or 'default'}/{meta['name']}"
            wanted[key] = (server, meta.get("generation"))
            self.held_adapters[key] = adapter_report.server_adapters(raw)
        return wanted

    async def sync(self) -> None:
        """Starts what was placed here, restarts what changed, stops what left, unloads what is
        scaled to 0 and loads it again at 1; then reports."""
        wanted = await self.placed_here()
        self.placed = {key: server for key, (server, _generation) in wanted.items()}
        changed = [key for key in self.engine.units
                   if key not in wanted or self.fingerprints.get(key) != runtime_fingerprint(wanted[key][0])]
        for key in changed:
            await self.engine.remove(key)
            self.fingerprints.pop(key, None)
            self.replicas.pop(key, None)
        origin = sources.ModelsRoot(self.settings.models_root)  # pvc claims resolve under it, never outside
        for key, (server, _generation) in wanted.items():
            unit = self.engine.units.get(key)
            replicas, seen = server.spec.replicas, self.replicas.get(key)
            self.replicas[key] = replicas
            if unit is None:
                if replicas > 0:
                    self.fingerprints[key] = runtime_fingerprint(server)
                    self.engine.launch(self.engine.add(key, server, origin))
                else:
                    self.replicas.pop(key, None)
                continue
            unit.server = server  # replicas or autoscaling changed: read by the engine's idle rules
            if replicas == 0 and unit.phase != "Unloaded":
                await self.engine.unload(unit, "spec.replicas is 0 (scaled to zero)", wakeable=False)
            elif replicas > 0 and seen != replicas and unit.phase == "Unloaded":
                self.engine.load(unit)
        await self.engine.track_usage()
        await self.report()
        await self.relay_adapters()

    def _changed(self) -> None:
        self._dirty.set()

    async def _report_changes(self) -> None:
        """Reports soon after every change the engine announces (coalesced)."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.report()
                await self.relay_downloads()
                await self.relay_adapters()
            except kube_mod.ApiError as exc:
                log.warning("status report failed, retrying on the next change: %s", exc)

    async def report(self) -> None:
        """Writes status.models when it changed (heartbeats go to the Lease, not here)."""
        async with self._report_lock:
            models = [model_report(unit) for _, unit in sorted(self.engine.units.items())]
            allocated = sum(entry.get("memoryBytes", 0) for entry in models if entry["state"] in ("Starting", "Ready"))
            status = {"models": models, "modelCount": len(models), "allocatedMemoryBytes": allocated}
            if status == self._reported:
                return
            await self._api("patch_status", "AppleNode", None, self.settings.node_name, status)
            self._reported = status

    async def relay_downloads(self) -> None:
        """Patches status.download of the servers downloading here (best effort: the operator grants
        the patch, by name, only once the server is placed on this node)."""
        for key, unit in sorted(self.engine.units.items()):
            patch = download_report(unit)
            if patch is None or self._relayed.get(key) == patch:
                continue
            namespace, _, name = key.partition("/")
            try:
                await self._api("patch_status", "LLMServer", namespace, name, patch)
            except kube_mod.ApiError as exc:
                log.debug("download progress of %s not reported: %s", key, exc)
                continue
            self._relayed[key] = patch

    async def relay_adapters(self) -> None:
        """Makes status.adapters of each server placed here say what this Mac does with its
        adapters (adapter_report); compared with what the API server last showed, so nothing is
        written when nothing changed, and an entry list someone else overwrote is written again."""
        async with self._adapters_lock:
            for key, server in sorted(self.placed.items()):
                await self._relay_adapters_of(key, server)

    async def _relay_adapters_of(self, key: str, server: llmserver_api.LLMServer) -> None:
        """Writes one server's status.adapters when it differs from what the API server holds."""
        unit = self.engine.units.get(key)
        wanted = adapter_report.entries(unit.server if unit is not None else server, unit,
                                        self.settings.node_name, self.settings.cache_dir)
        patch = adapter_report.patch(wanted, self.held_adapters.get(key))
        if patch is None:
            return
        namespace, _, name = key.partition("/")
        try:
            await self._api("patch_status", "LLMServer", namespace, name, patch)
        except kube_mod.ApiError as exc:
            log.debug("adapter status of %s not reported: %s", key, exc)
            return
        self.held_adapters[key] = wanted

    # --- main loop -------------------------------------------------------------------------------
    async def _retrying(self, what: str, call: Callable[[], Awaitable[None]], stop: asyncio.Event) -> bool:
        """Runs `call` until it succeeds (True) or `stop` is set (False), backing off between API errors."""
        backoff = Backoff(cap=max(1.0, self.settings.lease_seconds / 3))
        while not stop.is_set():
            try:
                await call()
                return True
            except kube_mod.ApiError as exc:
                delay = backoff.next_delay()
                log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, backoff.failures, delay, exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return False

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Renews the Lease every third of its duration, on its own task; a failed renewal is retried
        with backoff (capped at a third of the duration) and never stops the agent."""
        beat_every = self.settings.lease_seconds / 3
        while not stop.is_set():
            if await self._retrying("heartbeat", self.heartbeat, stop):
                self.heartbeats += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), beat_every)

    async def run(self, stop: asyncio.Event) -> None:
        """Registers, then heartbeats and syncs until `stop`; stops every runtime on the way out
        (and only then: while the API is unreachable the runtimes keep serving)."""
        async with self.engine:
            reporter = asyncio.create_task(self._report_changes(), name="agent-report")
            beats: asyncio.Task[None] | None = None
            try:
                if not await self._retrying("registration", self.register, stop):
                    return
                beats = asyncio.create_task(self._heartbeats(stop), name="agent-heartbeat")
                backoff = Backoff(cap=max(self.settings.sync_seconds, 10.0))
                while not stop.is_set():
                    if self.refresher is not None:
                        await asyncio.to_thread(self.refresher.check)
                    wait = self.settings.sync_seconds
                    try:
                        await self.sync()
                        backoff.reset()
                    except kube_mod.ApiError as exc:
                        wait = max(wait, backoff.next_delay())
                        log.warning("sync failed (attempt %d), keeping what runs, retrying in %.1fs: %s",
                                    backoff.failures, wait, exc)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
            finally:
                tasks = [task for task in (reporter, beats) if task is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
