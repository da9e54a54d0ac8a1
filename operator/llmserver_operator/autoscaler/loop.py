"""Runs the autoscaler: every interval, measure the gateways once, decide for each autoscaled server,
apply what changed (scale subresource, Event, status.autoscaling, metrics).

It runs inside kopf (started by a startup handler, handlers.py), and kopf runs only on the replica
holding the leader Lease (leader.py): one replica scales. The servers come from the LLMServer watch
(`seen` / `forget` from the event handler) and are read from the watch cache each round, so a round
makes one EndpointSlice list and one GET per gateway replica, and writes only when a decision does.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import llmserver_api
import pydantic

from llmserver_operator import kube as kube_mod
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import watch_cache
from llmserver_operator.autoscaler import decision, gateways, reporting
from llmserver_operator.builders import plan

LOG = logging.getLogger(__name__)
Key = tuple[str, str]
MAC_BACKENDS = (llmserver_api.Backend.MLX.value, llmserver_api.Backend.MLX_VLM.value)


def utc_now() -> str:
    """RFC 3339 wall time, as status and Events carry it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def on_mac(server: llmserver_api.LLMServer, status: Mapping[str, Any]) -> bool:
    """Placed on a Mac: by its spec, by the backend `auto` resolved to, or by a placement already made."""
    resolved = (status.get("resolved") or {}).get("backend")
    placed = bool(status.get("placement"))
    return plan.placement(server.spec) == plan.Placement.APPLE or resolved in MAC_BACKENDS or placed


class Autoscaler:
    """The autoscaler of one operator instance (its state lives here, on the kopf memo)."""

    def __init__(self, kube: kube_mod.Kube, cache: watch_cache.WatchCache, metrics: metrics_mod.OperatorMetrics,
                 service: gateways.ServiceRef | None, interval: float = 1.0, timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], str] = utc_now) -> None:
        self.kube = kube
        self.cache = cache
        self.metrics = metrics
        self.service = service
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.wall = wall
        self._guard = threading.Lock()  # `seen` runs on kopf's handler threads
        self._tracked: set[Key] = set()
        self._stale: set[Key] = set()  # no longer autoscaled but status.autoscaling is still there
        self._memories: dict[Key, decision.Memory] = {}

    # --- which servers ---------------------------------------------------------------------
    def seen(self, body: Mapping[str, Any]) -> None:
        """An LLMServer event: tracked while it has spec.autoscaling (and is not being deleted)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name")))
        wanted = bool((body.get("spec") or {}).get("autoscaling")) and not meta.get("deletionTimestamp")
        if wanted:
            with self._guard:
                self._tracked.add(key)
                self._stale.discard(key)
            return
        self.forget(*key)
        if (body.get("status") or {}).get("autoscaling") and not meta.get("deletionTimestamp"):
            with self._guard:
                self._stale.add(key)

    def forget(self, namespace: str, name: str) -> None:
        """The server is gone or no longer autoscaled."""
        with self._guard:
            known = (namespace, name) in self._tracked
            self._tracked.discard((namespace, name))
            self._memories.pop((namespace, name), None)
        if known:
            self.metrics.autoscaler_forget(namespace, name)

    def tracked(self) -> list[Key]:
        """The autoscaled servers, in a stable order."""
        with self._guard:
            return sorted(self._tracked)

    # --- rounds ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Rounds every `interval` seconds until cancelled; a failed round is logged and the next one runs."""
        async with aiohttp.ClientSession() as session:
            while True:
                started = self.clock()
                try:
                    await self.round(session)
                except Exception:  # noqa: BLE001 - a bug or an API outage must not stop autoscaling for good
                    LOG.exception("autoscaler round failed")
                await asyncio.sleep(max(0.05, self.interval - (self.clock() - started)))

    async def measure(self, session: aiohttp.ClientSession) -> gateways.Load | None:
        """Every gateway replica's load; None when none could be read (or no gateway is configured)."""
        if self.service is None:
            return None
        try:
            slices = await asyncio.to_thread(self.kube.list, "EndpointSlice", self.service.namespace,
                                             self.service.labels)
        except kube_mod.ApiError as exc:
            LOG.warning(f"autoscaler: cannot list the gateway's EndpointSlices: {exc}")
            return None
        urls = gateways.load_urls(slices)
        load = await gateways.scrape(session, urls, self.timeout) if urls else None
        if load is not None and not load.complete:
            LOG.info(f"autoscaler: {load.asked - load.answered} of {load.asked} gateway(s) did not answer")
        return load if load is not None and load.answered else None

    async def round(self, session: aiohttp.ClientSession) -> None:
        """One measurement, then one decision per autoscaled server."""
        await self.clear_stale()
        tracked = self.tracked()
        if not tracked:
            return
        load = await self.measure(session)
        now = self.clock()
        for namespace, name in tracked:
            demand = None
            if load is not None:
                seen = load.servers.get(f"{namespace}/{name}", gateways.ServerLoad())
                demand = decision.Demand(seen.in_flight, seen.held, load.complete, seen.refused)
            try:
                await self.step(namespace, name, demand, now)
            except kube_mod.ApiError as exc:
                LOG.warning(f"autoscaler: {namespace}/{name}: {exc}")

    async def clear_stale(self) -> None:
        """Removes status.autoscaling of servers whose spec.autoscaling was removed (e.g. `unload-model`)."""
        with self._guard:
            stale, self._stale = sorted(self._stale), set()
        for namespace, name in stale:
            body = self.cache.get("LLMServer", namespace, name)
            if body is None or (body.get("spec") or {}).get("autoscaling"):
                continue
            if not (body.get("status") or {}).get("autoscaling"):
                continue
            try:
                await asyncio.to_thread(self.kube.patch_status, "LLMServer", namespace, name, {"autoscaling": None})
            except kube_mod.ApiError as exc:
                if exc.status != 404:
                    LOG.warning(f"autoscaler: clearing status.autoscaling of {namespace}/{name}: {exc}")
                    with self._guard:
                        self._stale.add((namespace, name))

    async def step(self, namespace: str, name: str, demand: decision.Demand | None, now: float) -> None:
        """Decides for one server and applies the decision."""
        body = self.cache.get("LLMServer", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        try:
            server = llmserver_api.LLMServer.model_validate(body)
        except pydantic.ValidationError:
            return  # the reconciler reports it; an invalid spec is not scaled
        autoscaling = server.spec.autoscaling
        if autoscaling is None:
            self.forget(namespace, name)
            return
        status = body.get("status") or {}
        policy = decision.Policy.of(autoscaling, mac=on_mac(server, status))
        current = server.spec.replicas
        with self._guard:
            memory = self._memories.get((namespace, name), decision.Memory())
        decided, memory = decision.decide(policy, current, memory, now, demand)
        with self._guard:
            if (namespace, name) in self._tracked:
                self._memories[(namespace, name)] = memory
        self.metrics.autoscaled(namespace, name, decided.desired, demand.in_flight if demand is not None else 0)
        wall = self.wall()
        if decided.replicas is not None and decided.direction is not None:
            await asyncio.to_thread(self.kube.patch_scale, "LLMServer", namespace, name, decided.replicas)
            self.metrics.autoscale_decision(namespace, name, decided.direction)
            LOG.info(f"autoscaler: {namespace}/{name}: replicas {current} -> {decided.replicas}: {decided.reason}")
            try:
                await asyncio.to_thread(self.kube.create, reporting.event(body, current, decided, wall))
            except kube_mod.ApiError as exc:  # the scale happened; a lost Event is only logged
                LOG.warning(f"autoscaler: event for {namespace}/{name}: {exc}")
        patch = reporting.status_patch(status.get("autoscaling"), decided, wall)
        if patch is not None:
            await asyncio.to_thread(self.kube.patch_status, "LLMServer", namespace, name, {"autoscaling": patch})
