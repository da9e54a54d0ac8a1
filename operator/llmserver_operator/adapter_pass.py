"""The adapter part of one reconcile pass of a cluster-hosted LLMServer (spec.adapters).

Before the Deployment: each adapter's download Job is ensured (builders.adapters) and what it
did is observed. After it: what the replicas serve is counted (restart engines: ready pods
started with `--adapter NAME=...`; live engines: each ready endpoint's `/v1/models`, after
loading and unloading through the runtime: llmserver_operator.adapters). The reconciler turns
that into status.adapters (adapter_status) and asks for another pass while replicas lag behind.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import llmserver_api

from llmserver_operator import adapter_status, adapters, children, status
from llmserver_operator import kube as kube_mod
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import adapters as adapter_builders
from llmserver_operator.builders import common, plan

Manifest = dict[str, Any]


class Host(Protocol):
    """What of the reconciler this uses (its writes keep one code path for every child)."""

    kube: kube_mod.Kube
    children: children.Children
    settings: settings_mod.Settings

    def _secrets(self, namespace: str, *refs: llmserver_api.SecretKeyRef | None) -> dict[str, frozenset[str]]: ...
    def _ensure_cache(self, server: llmserver_api.LLMServer, pvc: Manifest, raw: Manifest) -> None: ...
    def _ensure_job(self, desired: Manifest, current: Manifest | None, owner: Manifest) -> Manifest: ...


@dataclasses.dataclass(frozen=True)
class Served:
    """status.adapters to write (None: leave it) and when to look again (None: on the next event)."""

    entries: list[Manifest] | None
    retry_after: float | None = None


def _succeeded(job: Manifest | None) -> bool:
    return bool(job is not None and (job.get("status") or {}).get("succeeded"))


class AdapterPass:
    """Adapter downloads and serving for the reconciler (one instance per Reconciler)."""

    def __init__(self, host: Host, sync: adapters.AdapterSync | None = None) -> None:
        self.host = host
        self.sync = sync or adapters.AdapterSync()
        self._lagging: dict[tuple[str, str], int] = {}  # server -> passes in a row that left replicas behind
        self._guard = threading.Lock()

    def _backoff(self, server: llmserver_api.LLMServer, behind: bool) -> float | None:
        """1 s (or less), doubling per pass that leaves replicas behind, up to retry_delay_seconds."""
        key = (common.namespace_of(server), common.name_of(server))
        with self._guard:
            if not behind:
                self._lagging.pop(key, None)
                return None
            count = self._lagging[key] = self._lagging.get(key, 0) + 1
        cap = self.host.settings.retry_delay_seconds
        return min(cap, min(1.0, cap) * 2 ** min(count - 1, 16))

    # --- downloads -----------------------------------------------------------------------
    def downloads(self, server: llmserver_api.LLMServer, raw: Manifest,
                  keep: set[tuple[str, str]]) -> dict[str, adapter_status.Seen]:
        """Ensures each adapter's download Job; what each one is at, by adapter name."""
        host, settings = self.host, self.host.settings
        namespace = common.namespace_of(server)
        seen: dict[str, adapter_status.Seen] = {}
        refused = adapter_builders.unsupported(server.spec)
        if refused:  # nothing to download or start with: each adapter is Failed until the spec changes
            return {a.name: adapter_status.Seen(problem=refused, permanent=True) for a in server.spec.adapters}
        for adapter in server.spec.adapters:
            if not adapter_builders.needs_download(adapter):
                claim = adapter_builders.unmounted_claim(server, adapter, settings)
                problem = None if claim is None else (
                    f"PersistentVolumeClaim {claim!r} is not mounted by the runtime pods: put the adapter on "
                    f"{common.cache_claim_name(server, settings)!r} (mounted at /models) or use another source")
                seen[adapter.name] = adapter_status.Seen(downloaded=claim is None, problem=problem, permanent=True)
        found = plan.adapter_children(server, settings)
        if found is None:
            return seen
        keep.update((obj["kind"], obj["metadata"]["name"]) for obj in (*found.identity, *found.jobs))
        if found.cache is not None:
            keep.add(("PersistentVolumeClaim", found.cache["metadata"]["name"]))
        claim = common.cache_claim_name(server, settings)
        identity_done = False
        wanted = {adapter_builders.adapter_of(job): job for job in found.jobs}
        for adapter in server.spec.adapters:
            desired_job = wanted.get(adapter.name)
            if desired_job is None:
                continue
            name = desired_job["metadata"]["name"]
            job = host.children.claim(host.children.read("Job", namespace, name), raw)
            if _succeeded(job):
                if host.children.exists("PersistentVolumeClaim", namespace, claim):
                    seen[adapter.name] = adapter_status.Seen(job=job, downloaded=True)
                    continue
                assert job is not None  # the claim went with the adapter on it: download again
                host.kube.delete("Job", namespace, name, uid=job["metadata"].get("uid"))
                job = None
            refs = status.download_secret_refs(adapter.source)
            secrets = host._secrets(namespace, *(ref for ref, _ in refs))
            where = f"spec.adapters[{adapter.name}].source"
            problem = next((p.replace("spec.source", where) for ref, field in refs
                            if (p := status.secret_problem(ref, secrets, field)) is not None), None)
            if problem is not None:
                seen[adapter.name] = adapter_status.Seen(job=job, problem=problem)
                continue
            if not identity_done:
                for obj in found.identity:
                    host.children.apply(obj, raw)
                if found.cache is not None:
                    host._ensure_cache(server, found.cache, raw)
                identity_done = True
            job = host._ensure_job(host.children.prepared(copy.deepcopy(desired_job), raw), job, raw)
            failed = bool((job.get("status") or {}).get("failed"))
            pods = host.kube.list("Pod", namespace, {"job-name": name}) if failed else []
            seen[adapter.name] = adapter_status.Seen(job=job, job_pods=pods, downloaded=_succeeded(job))
        return seen

    # --- serving -------------------------------------------------------------------------
    def served(self, server: llmserver_api.LLMServer, seen: Mapping[str, adapter_status.Seen],
               deployment: Manifest | None, previous: Mapping[str, Any]) -> Served:
        """status.adapters once the Deployment is applied; live engines are loaded here."""
        before = previous.get("adapters") or []
        if not server.spec.adapters and not before:
            self._backoff(server, behind=False)
            return Served(None)
        live = adapter_builders.loads_live(server.spec)
        counts: dict[str, int] = {}
        errors: dict[str, str] = {}
        unloading: dict[str, int] = {}
        retry = lagging = False
        if deployment is not None and live:
            result = self._sync_live(server, seen)
            counts, errors, unloading, retry = result.held, result.errors, result.unloading, result.incomplete
            # a replica ready before its endpoint is published is not seen yet: look again until all hold them
            ready = max(result.replicas, int((deployment.get("status") or {}).get("readyReplicas") or 0))
            lagging = any(s.downloaded and s.problem is None and name not in errors and counts.get(name, 0) < ready
                          for name, s in seen.items())
        elif deployment is not None:
            counts = self._count_started(server)
        merged = {name: dataclasses.replace(s, ready_replicas=counts.get(name, 0), load_error=errors.get(name))
                  for name, s in seen.items()}
        entries = adapter_status.compute(server.spec, merged, before, live, unloading)
        delay = self._backoff(server, retry or bool(unloading) or lagging)
        if any(s.problem is not None and not s.permanent for s in seen.values()):  # Secrets are not watched
            delay = min(delay or self.host.settings.retry_delay_seconds, self.host.settings.retry_delay_seconds)
        return Served(entries, delay)

    def _sync_live(self, server: llmserver_api.LLMServer, seen: Mapping[str, adapter_status.Seen]) -> adapters.Result:
        namespace, name = common.namespace_of(server), common.name_of(server)
        slices = self.host.kube.list("EndpointSlice", namespace, {"kubernetes.io/service-name": name})
        replicas = adapters.ready_replicas(slices)
        paths = {a.name: adapter_builders.adapter_path(a) for a in server.spec.adapters
                 if (s := seen.get(a.name)) is not None and s.downloaded and s.problem is None}
        return self.sync.sync(server.spec.model, paths, replicas)

    def _count_started(self, server: llmserver_api.LLMServer) -> dict[str, int]:
        """Ready runtime pods started with each adapter (restart engines take them at start)."""
        pods = self.host.children.list("Pod", common.namespace_of(server), common.selector(server))
        counts: dict[str, int] = {}
        for pod in pods:
            if (pod.get("metadata") or {}).get("deletionTimestamp") or not _ready(pod):
                continue
            args = next(iter((pod.get("spec") or {}).get("containers") or []), {}).get("args") or []
            args = args[:args.index("--")] if "--" in args else args  # spec.extraArgs are the engine's
            for flag, value in zip(args, args[1:], strict=False):
                if flag == "--adapter" and "=" in value:
                    adapter = value.split("=", 1)[0]
                    counts[adapter] = counts.get(adapter, 0) + 1
        return counts


def _ready(pod: Manifest) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
