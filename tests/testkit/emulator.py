"""A stateful, in-memory Kubernetes API server over HTTP on loopback, for tests and benchmarks.

Why not kmock's KubernetesEmulator as-is: it stamps no uid/resourceVersion/generation, has no PUT,
JSON patch, label selectors, generateName or garbage collection, replays watches without honouring
resourceVersion, and scans every object per request. kopf 1.45, the `kubernetes` client and kubectl
need all of that, so this is a small emulator of its own on aiohttp (the design follows kmock's:
an in-memory object database behind the real HTTP API).

Usage (a pytest fixture would wrap exactly this)::

    from testkit import emulator
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        kube.kubeconfig            # path of a kubeconfig pointing at http://127.0.0.1:<port>
        kube.url                   # the server URL
        kube.create({...})         # any manifest; namespace defaults to "default"
        kube.get("apps/v1", "Deployment", "name", "ns")          # dict or None
        kube.list("v1", "Pod", "ns", labels="app=x")             # list of dicts
        kube.patch("v1", "Pod", "name", {"status": {...}}, "ns", subresource="status")
        kube.delete("v1", "Pod", "name", "ns")
        kube.wait_for(lambda: kube.get(...), timeout=30)         # event-driven, no sleeping loop
        kube.writes()              # API write requests seen over HTTP (method, path, content type, verb, kind)
        kube.calls()               # Counter of HTTP API calls by (verb, kind), e.g. ("patch", "LLMServer/status")
        kube.faults.add(verb="patch", kind="Deployment", status=500, times=2)   # see emulator_faults
        kube.gc.idle()             # waits for the asynchronous garbage collector (emulator_gc)
        kube.kubectl("get", "llms", "-n", "ns")                  # runs /usr/bin/kubectl against it
        kube.store                 # the emulator_store.Store: direct, thread-safe access

Semantics: uid, resourceVersion (one global counter), generation (bumped when anything but
metadata/status changes), creationTimestamp and generateName as the API server does; create, get,
list, watch, PUT, PATCH (merge, JSON patch with `test` → 422 on mismatch; strategic-merge and
apply patches are treated as merge patches), DELETE (finalizers → deletionTimestamp; collection
deletes); label and field selectors; status subresources (writes to the main resource keep status,
writes to /status change only status); the scale subresource of Deployments/ReplicaSets/StatefulSets
and of CRDs that declare one (autoscaling/v1 Scale from their paths: emulator_scale);
CRD structural defaults applied on every write, and fields the CRD's structural schema does not declare
pruned (with a Warning header; `fieldValidation=Strict` refuses them, emulator_prune); names validated
per kind (DNS-1123 label/subdomain, DNS-1035 for Services, 63/253 limits) and label keys/values and
annotations as the API server does (422 Invalid, emulator_names); ownerReference garbage collection
on a background thread (Background, Foreground with blockOwnerDeletion, Orphan: emulator_gc);
opt-in OwnerReferencesPermissionEnforcement (emulator_admission); injected faults (500, 429 with
Retry-After, delays, dropped watches: emulator_faults); watches replay from resourceVersion, answer 410 Gone past the log,
and honour timeoutSeconds; lists carry kind/apiVersion/resourceVersion; kubectl gets Table output
with a CRD's printer columns (`kubectl apply/get/patch/wait/scale/delete` work with --validate=false).
Namespaces are created on first use and deleted synchronously with their contents. No schema
validation of custom resources (tests/testkit/crd_validation does that offline), no controllers
(see testkit.kubelet for Jobs, Deployments, Pods and EndpointSlices).
"""

from __future__ import annotations

import asyncio
import collections
import os
import pathlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

import aiohttp.web
import yaml

from testkit import emulator_admission, emulator_faults, emulator_gc, emulator_http, emulator_store

T = TypeVar("T")
REPO = pathlib.Path(__file__).resolve().parents[2]
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def project_crds() -> list[dict[str, Any]]:
    """The project's generated CRDs (crds/*.yaml)."""
    return [yaml.safe_load(path.read_text()) for path in sorted((REPO / "crds").glob("*.yaml"))]


class KubeEmulator:
    """The emulator server, run on its own thread and event loop; usable as a context manager."""

    def __init__(self, crds: Iterable[dict[str, Any]] = (), log_size: int = 200_000, gc_delay: float = 0.05,
                 owner_references: emulator_admission.OwnerReferencesEnforcement | None = None) -> None:
        self.store = emulator_store.Store(log_size=log_size)
        for crd in crds:
            self.store.add_crd(crd)
        self.store.owner_references = owner_references
        self.faults = emulator_faults.Faults()
        self.gc = emulator_gc.GarbageCollector(self.store, delay=gc_delay)
        self._changed = threading.Event()
        self.store.subscribe(lambda event: self._changed.set())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: aiohttp.web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._api: emulator_http.Api | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> KubeEmulator:
        """Serves on 127.0.0.1:<free port> and writes the kubeconfig."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._api = emulator_http.Api(self.store, loop, self.faults)
                self._runner = aiohttp.web.AppRunner(self._api.app(), access_log=None, handle_signals=False, handler_cancellation=True,
                                                     shutdown_timeout=2.0)
                loop.run_until_complete(self._runner.setup())
                site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except BaseException as exc:  # noqa: BLE001 - surfaced to the caller of start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._api.close()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="kube-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        self._write_kubeconfig()
        self.gc.start()
        return self

    def stop(self) -> None:
        """Stops serving (open watch streams are closed)."""
        self.gc.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        """Path of a kubeconfig whose current context is this emulator (namespace `default`)."""
        return os.path.join(self._tmp.name, "kubeconfig")

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"}}],
            "current-context": "emulator",
        }
        pathlib.Path(self.kubeconfig).write_text(yaml.safe_dump(config))

    # --- direct access (thread-safe; no HTTP) ---------------------------------------------
    def _resource(self, api_version: str, kind: str) -> emulator_store.Resource:
        return self.store.by_kind(api_version, kind)

    def create(self, obj: dict[str, Any], keep_status: bool = False) -> dict[str, Any]:
        """Creates any manifest; `keep_status` also stores its status (as a controller would write it)."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        return self.store.create(resource, (obj.get("metadata") or {}).get("namespace"), obj, keep_status=keep_status)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = "default") -> dict[str, Any] | None:
        """The object, or None."""
        try:
            return self.store.get(self._resource(api_version, kind), namespace, name)
        except emulator_store.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, labels: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (all namespaces when `namespace` is None)."""
        return self.store.list(self._resource(api_version, kind), namespace, labels)[0]

    def patch(self, api_version: str, kind: str, name: str, patch: Any, namespace: str | None = "default",
              subresource: str | None = None, content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        """Patches one object (merge patch unless told otherwise)."""
        return self.store.patch(self._resource(api_version, kind), namespace, name, patch, content_type, subresource)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = "default",
               propagation: str = "Background") -> dict[str, Any]:
        """Deletes one object; its dependents are garbage-collected afterwards (`gc.idle()` waits for that)."""
        return self.store.delete(self._resource(api_version, kind), namespace, name, propagation)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, message: str = "") -> T:
        """Re-evaluates `predicate` after every change until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout}s: {message or predicate}")
            self._changed.wait(min(left, 1.0))

    # --- observation -----------------------------------------------------------------------
    @property
    def requests(self) -> list[emulator_http.Logged]:
        """Every HTTP request served so far."""
        return self._api.requests if self._api is not None else []

    def writes(self, since: int = 0) -> list[emulator_http.Logged]:
        """HTTP write requests (POST/PUT/PATCH/DELETE) from request number `since` on."""
        return [r for r in self.requests[since:] if r.method in WRITE_METHODS]

    def calls(self, since: int = 0, agent: str | None = None) -> collections.Counter[tuple[str, str]]:
        """HTTP API calls by (verb, kind) from request number `since` on (only `agent`'s when given)."""
        return collections.Counter((r.verb, r.kind) for r in self.requests[since:]
                                   if r.verb and (agent is None or r.agent == agent))

    def kubectl(self, *args: str, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against the emulator and returns the finished process."""
        return subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True,
                              timeout=timeout, check=check)
