"""The Mac agent: registers an AppleNode, heartbeats through a Lease, and runs the mlx / mlx-vlm
runtimes of the LLMServers the operator placed on this Mac, reporting each one's state and port.

It never decides placement: it serves what `status.placement.node` says and stops what moved away.
Runtimes require a per-node API key (kept in a Secret the gateway reads), because a Mac's ports are
reachable from more than the cluster. Unified memory is the scarce resource: before a model loads,
least-recently-used models are stopped until it fits, and idle ones can be unloaded on a timer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import secrets
import socket
import time
from typing import Any

import aiohttp

import llmserver_api

from llmserver_operator import kube as kube_mod
from llmserver_cli.apple import agent_settings, system
from llmserver_operator.apple import leases, placement, publishing
from llmserver_cli.local import activity, commands, process, sources, units

log = logging.getLogger("llmserver.agent")
Manifest = dict[str, Any]


@dataclasses.dataclass
class ModelRun:
    """One placed server on this Mac and the runtime serving it."""

    key: str  # namespace/name
    server: llmserver_api.LLMServer
    generation: int | None
    state: str = "Starting"
    message: str = ""
    port: int | None = None
    memory_bytes: int | None = None
    proc: process.ManagedProcess | None = None
    task: asyncio.Task[None] | None = None
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    usage: tuple[float, float] | None = None

    def report(self) -> dict[str, Any]:
        """The entry of AppleNode.status.models."""
        entry = {"server": self.key, "model": self.server.spec.model, "state": self.state,
                 "port": self.port, "memoryBytes": self.memory_bytes, "message": self.message}
        return {k: v for k, v in entry.items() if v is not None}


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _files(path: pathlib.Path) -> dict[str, int]:
    if path.is_file():
        return {path.name: path.stat().st_size}
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()}


class AppleAgent:
    """Runs until `stop` is set; every API call goes through the operator's `kube.Kube` in a thread."""

    def __init__(self, settings: agent_settings.AgentSettings, kube: kube_mod.Kube) -> None:
        self.settings = settings
        self.kube = kube
        self.api_key = secrets.token_urlsafe(32)
        self.runs: dict[str, ModelRun] = {}
        self._reported: Any = None
        self._http: aiohttp.ClientSession | None = None

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
        now = leases.format_micro_time(datetime.datetime.now(datetime.UTC))
        await self._upsert({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": leases.lease_name(s.node_name), "namespace": s.namespace},
            "spec": {"holderIdentity": s.node_name, "leaseDurationSeconds": s.lease_seconds, "renewTime": now},
        })

    # --- models --------------------------------------------------------------------------------
    async def placed_here(self) -> dict[str, tuple[llmserver_api.LLMServer, int | None]]:
        """The servers whose status.placement names this node and that want replicas."""
        wanted = {}
        for raw in await self._api("list", "LLMServer", None):
            if ((raw.get("status") or {}).get("placement") or {}).get("node") != self.settings.node_name:
                continue
            try:
                server = llmserver_api.LLMServer.model_validate(raw)
            except ValueError:
                continue
            if server.spec.replicas > 0:
                meta = raw["metadata"]
                wanted[f"{meta.get('namespace') or 'default'}/{meta['name']}"] = (server, meta.get("generation"))
        return wanted

    async def sync(self) -> None:
        """Starts what was placed here, restarts what changed, stops what left; then reports."""
        wanted = await self.placed_here()
        for key in [k for k in self.runs if k not in wanted or self.runs[k].generation != wanted[k][1]]:
            await self._stop(self.runs.pop(key))
        for key, (server, generation) in wanted.items():
            if key not in self.runs:
                run = ModelRun(key=key, server=server, generation=generation)
                self.runs[key] = run
                run.task = asyncio.create_task(self._bring_up(run))
        await self._track_usage()
        await self.report()

    async def _bring_up(self, run: ModelRun) -> None:
        s = self.settings
        try:
            origin = s.models_root / "manifest"  # relative pvc claimNames resolve under models_root
            if run.server.spec.source and run.server.spec.source.hugging_face:
                run.state, run.message = "Downloading", f"downloading {run.server.spec.source.hugging_face.repo}"
                await self._download(run)
            path = sources.model_path(run.server, origin, s.cache_dir)
            if not path.exists():
                raise units.LoadFailed(f"model path {path} does not exist on {s.node_name}")
            config_file = path / "config.json"
            config = json.loads(config_file.read_text()) if config_file.is_file() else {}
            run.memory_bytes = placement.estimate_memory_bytes(_files(path), config)
            await self._make_room(run)
            run.port = self._next_port()
            run.state, run.message = "Starting", f"loading {path.name}"
            await self.report()
            env = {**units.child_env(dict(os.environ)), "LLMSERVER_API_KEY": self.api_key}
            run.proc = process.ManagedProcess(commands.serve(s.python, run.server, path, s.bind_host, run.port),
                                              s.log_dir / f"{run.key.replace('/', '_')}.log", env=env)
            await run.proc.start()
            await self._wait_ready(run)
            run.state, run.message, run.last_used = "Ready", f"serving on port {run.port}", time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # shown in status; the agent keeps serving the others
            run.state, run.message = "Failed", str(exc)[:500]
            log.warning("model %s failed: %s", run.key, run.message)
            if run.proc is not None:
                await run.proc.stop()
        await self.report()

    async def _download(self, run: ModelRun) -> None:
        target = sources.huggingface_path(run.server, self.settings.cache_dir)
        if target.exists():
            return
        argv = [*commands.download(self.settings.python, run.server, self.settings.cache_dir), "--report-to", run.key]
        proc = process.ManagedProcess(argv,
                                      self.settings.log_dir / f"{run.key.replace('/', '_')}.download.log")
        await proc.start()
        if await proc.wait() != 0:
            raise units.LoadFailed(f"download failed: {proc.tail(3) or 'no output'}")

    def _next_port(self) -> int:
        taken = {run.port for run in self.runs.values() if run.port}
        port = self.settings.port_range_start
        while port in taken or not _port_free(self.settings.bind_host, port):
            port += 1
        return port

    async def _wait_ready(self, run: ModelRun) -> None:
        assert run.proc is not None and self._http is not None
        deadline = time.monotonic() + self.settings.ready_timeout
        while time.monotonic() < deadline:
            if run.proc.returncode is not None:
                raise units.LoadFailed(f"runtime exited with code {run.proc.returncode}: {run.proc.tail(3)}")
            if await units.http_ok(self._http, f"http://127.0.0.1:{run.port}/ready"):
                return
            await asyncio.sleep(0.25)
        raise units.LoadFailed(f"runtime not ready after {self.settings.ready_timeout:.0f}s")

    async def _make_room(self, run: ModelRun) -> None:
        """Evicts least-recently-used Ready models until the new one fits in free memory."""
        needed = run.memory_bytes or 0
        while system.available_memory_bytes() < needed:
            victims = sorted((r for r in self.runs.values() if r is not run and r.state == "Ready"),
                             key=lambda r: r.last_used)
            if not victims:
                return  # nothing left to evict: try anyway, a load failure is reported
            victim = victims[0]
            await self._stop(victim)
            victim.state, victim.message = "Unloaded", f"evicted (least recently used) to make room for {run.key}"
            log.info("evicted %s for %s", victim.key, run.key)

    async def _track_usage(self) -> None:
        """Learns use from each runtime's /metrics; unloads models idle past the setting."""
        assert self._http is not None
        for run in self.runs.values():
            if run.state != "Ready" or run.port is None:
                continue
            try:
                async with self._http.get(f"http://127.0.0.1:{run.port}/metrics",
                                          timeout=aiohttp.ClientTimeout(total=2)) as response:
                    current = activity.signature(await response.text())
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                continue
            if activity.used_since(run.usage, current):
                run.last_used = time.monotonic()
            run.usage = current
            idle = self.settings.idle_unload_seconds
            if idle and time.monotonic() - run.last_used > idle:
                await self._stop(run)
                run.state, run.message = "Unloaded", f"idle for more than {idle:.0f}s"

    async def _stop(self, run: ModelRun) -> None:
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
        if run.proc is not None:
            await run.proc.stop()
            run.proc = None
        run.port = None

    async def report(self) -> None:
        """Writes status.models when it changed (heartbeats go to the Lease, not here)."""
        models = [run.report() for _, run in sorted(self.runs.items())]
        allocated = sum(run.memory_bytes or 0 for run in self.runs.values() if run.state in ("Starting", "Ready"))
        status = {"models": models, "modelCount": len(models), "allocatedMemoryBytes": allocated}
        if status == self._reported:
            return
        await self._api("patch_status", "AppleNode", None, self.settings.node_name, status)
        self._reported = status

    # --- main loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Registers, then heartbeats and syncs until `stop`; stops every runtime on the way out."""
        self._http = aiohttp.ClientSession()
        try:
            await self.register()
            beat_every = self.settings.lease_seconds / 3
            next_beat = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_beat:
                    await self.heartbeat()
                    next_beat = time.monotonic() + beat_every
                try:
                    await self.sync()
                except kube_mod.ApiError as exc:
                    log.warning("sync failed, retrying: %s", exc)
                try:
                    await asyncio.wait_for(stop.wait(), min(self.settings.sync_seconds, beat_every))
                except asyncio.TimeoutError:
                    pass
        finally:
            for run in self.runs.values():
                await self._stop(run)
            await self._http.close()
