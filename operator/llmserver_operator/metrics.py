"""The operator's own Prometheus metrics, served on /metrics by a small HTTP server of its own.

One `OperatorMetrics` per operator instance, holding its own registry (never prometheus_client's
global REGISTRY): tests run several operators in one process one after the other, and a global
registry would carry one operator's series (and duplicate-name errors) into the next. Label
values are bounded: reconcile results, Kubernetes verbs, the operator's resource kinds, HTTP
status codes, LLMServer phases. Per-server state (phase, a failed download Job) is aggregated
into counts at scrape time, so a deleted LLMServer leaves no series; the per-server view is
kube-state-metrics' `kube_llmserver_phase` (charts/llmserver/monitoring). The one exception is
the autoscaler's series, per autoscaled LLMServer by contract, removed when it goes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from wsgiref import simple_server

import llmserver_api
import prometheus_client
import prometheus_client.core
import prometheus_client.registry

PREFIX = "llmserver_operator_"
# success: converged (or the server is gone); retry: waiting for something outside its watches (a
# Secret, a claim); conflict: lost a write race or a name is taken (retried); error: API failure or bug.
RESULTS = ("success", "retry", "conflict", "error")
PHASES = tuple(phase.value for phase in llmserver_api.Phase)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class _Server:
    """What the last reconcile of one LLMServer wrote."""

    phase: str
    download_failed: bool


class _StateCollector(prometheus_client.registry.Collector):
    """Counts computed from the operator's current view at scrape time (every phase, zeros included)."""

    def __init__(self, owner: OperatorMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[prometheus_client.core.Metric]:
        servers, nodes = self._owner.snapshot()
        phases = prometheus_client.core.GaugeMetricFamily(
            PREFIX + "llmservers", "LLMServers by the phase the operator last wrote to their status.", labels=["phase"])
        for phase in PHASES:
            phases.add_metric([phase], sum(1 for server in servers if server.phase == phase))
        yield phases
        yield prometheus_client.core.GaugeMetricFamily(
            PREFIX + "download_jobs_failed", "LLMServers whose current download Job has failed for good.",
            value=sum(1 for server in servers if server.download_failed))
        apple = prometheus_client.core.GaugeMetricFamily(
            PREFIX + "apple_nodes", "Registered Macs (AppleNodes) by their Ready condition.", labels=["ready"])
        for ready in (True, False):
            apple.add_metric([str(ready).lower()], sum(1 for value in nodes if value is ready))
        yield apple


class OperatorMetrics:
    """The metric objects, the per-server view behind the gauges, and the /metrics server."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.reconciles = prometheus_client.Counter(
            PREFIX + "reconciles", "Reconciles of LLMServers by result.", ["result"], registry=self.registry)
        for result in RESULTS:  # every result exists from the start, so rate() and ratios see zeros
            self.reconciles.labels(result)
        self.reconcile_duration = prometheus_client.Histogram(
            PREFIX + "reconcile_duration_seconds", "Time one reconcile of an LLMServer took.",
            buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.api_requests = prometheus_client.Counter(
            PREFIX + "kube_requests", "Kubernetes API requests the reconciler sent (not kopf's watches and "
            "patches), by verb, resource and HTTP status code (`error`: no response).",
            ["verb", "resource", "code"], registry=self.registry)
        self.api_duration = prometheus_client.Histogram(
            PREFIX + "kube_request_duration_seconds", "Latency of the reconciler's Kubernetes API requests.",
            ["verb", "resource"], buckets=API_BUCKETS, registry=self.registry)
        # the autoscaler's per-server view (issue 18's contract names these series); a server that
        # stops being autoscaled, or is deleted, loses its series (autoscaler_forget)
        self.autoscaler_desired = prometheus_client.Gauge(
            PREFIX + "autoscaler_desired_replicas", "Replicas the autoscaler wants for an autoscaled LLMServer.",
            ["namespace", "name"], registry=self.registry)
        self.autoscaler_in_flight = prometheus_client.Gauge(
            PREFIX + "autoscaler_in_flight", "Requests in flight (held ones included) for an autoscaled LLMServer, "
            "summed over every gateway replica at the last round.", ["namespace", "name"], registry=self.registry)
        self.autoscaler_decisions = prometheus_client.Counter(
            PREFIX + "autoscaler_decisions", "Changes of spec.replicas the autoscaler made, by direction (up, down).",
            ["namespace", "name", "direction"], registry=self.registry)
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, str], _Server] = {}
        self._apple_nodes: dict[str, bool] = {}
        self.registry.register(_StateCollector(self))
        self._httpd: simple_server.WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- recording -------------------------------------------------------------------------
    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile finished with `result` (one of RESULTS)."""
        if result not in RESULTS:
            raise ValueError(f"unknown reconcile result {result!r}; expected one of {RESULTS}")
        self.reconciles.labels(result).inc()
        self.reconcile_duration.observe(seconds)

    def api_request(self, verb: str, resource: str, code: int | None, seconds: float) -> None:
        """One API request: `code` is the HTTP status, None when no response came (connection error)."""
        self.api_requests.labels(verb, resource, "error" if code is None else str(code)).inc()
        self.api_duration.labels(verb, resource).observe(seconds)

    def server_status(self, namespace: str, name: str, phase: str, download_failed: bool) -> None:
        """The status a reconcile computed (and wrote, when it changed) for one LLMServer."""
        with self._lock:
            self._servers[(namespace, name)] = _Server(phase, download_failed)

    def server_deleted(self, namespace: str, name: str) -> None:
        """The LLMServer is gone: it no longer counts anywhere."""
        with self._lock:
            self._servers.pop((namespace, name), None)

    def apple_node(self, name: str, ready: bool | None) -> None:
        """An AppleNode's Ready condition; None when the node was deleted."""
        with self._lock:
            if ready is None:
                self._apple_nodes.pop(name, None)
            else:
                self._apple_nodes[name] = ready

    def autoscaled(self, namespace: str, name: str, desired: int, in_flight: int) -> None:
        """One autoscaler round of a server: what it wants and what it measured."""
        self.autoscaler_desired.labels(namespace, name).set(desired)
        self.autoscaler_in_flight.labels(namespace, name).set(in_flight)

    def autoscale_decision(self, namespace: str, name: str, direction: str) -> None:
        """The autoscaler changed spec.replicas (`direction` up or down)."""
        self.autoscaler_decisions.labels(namespace, name, direction).inc()

    def autoscaler_forget(self, namespace: str, name: str) -> None:
        """The server is gone or no longer autoscaled: its autoscaler series go."""
        for gauge in (self.autoscaler_desired, self.autoscaler_in_flight):
            try:
                gauge.remove(namespace, name)
            except KeyError:
                pass
        for direction in ("up", "down"):
            try:
                self.autoscaler_decisions.remove(namespace, name, direction)
            except KeyError:
                pass

    def snapshot(self) -> tuple[list[_Server], list[bool]]:
        """A consistent copy of the per-server and per-node view."""
        with self._lock:
            return list(self._servers.values()), list(self._apple_nodes.values())

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return prometheus_client.generate_latest(self.registry)

    # --- serving ---------------------------------------------------------------------------
    def serve(self, address: str, port: int) -> int:
        """Serves /metrics on address:port in a daemon thread; returns the bound port. OSError if taken."""
        if self._httpd is not None:
            raise RuntimeError("the metrics server is already running")
        self._httpd, self._thread = prometheus_client.start_http_server(port, address, registry=self.registry)
        return int(self._httpd.server_address[1])

    def close(self) -> None:
        """Stops the server (if running) and frees its port."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(10)
