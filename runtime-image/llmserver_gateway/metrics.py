"""Prometheus metrics of the gateway (prefix `llmserver_gateway_`), on a per-app registry.

Model labels only ever take names from the routing table (unknown names count as "unknown"), so
a client cannot blow up the label cardinality by sending random model names.
"""

from __future__ import annotations

from typing import Any

import prometheus_client

UNKNOWN_MODEL = "unknown"

# Seconds; LLM requests range from milliseconds (embeddings) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
HOLD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """All gateway metrics, registered on their own registry (no global state)."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.registry = registry or prometheus_client.CollectorRegistry()
        r = self.registry
        self.requests = prometheus_client.Counter(
            "llmserver_gateway_requests", "Requests answered, by model and HTTP status.",
            ["model", "status"], registry=r)
        self.latency = prometheus_client.Histogram(
            "llmserver_gateway_request_duration_seconds", "Time from request to the last byte of the answer.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttfb = prometheus_client.Histogram(
            "llmserver_gateway_time_to_first_byte_seconds",
            "Time from request to the first byte of the answer's body sent to the client.",
            ["model"], buckets=TTFB_BUCKETS, registry=r)
        self.upstream_errors = prometheus_client.Counter(
            "llmserver_gateway_upstream_errors", "Failed upstream attempts, by model, endpoint and reason.",
            ["model", "endpoint", "reason"], registry=r)
        self.retries = prometheus_client.Counter(
            "llmserver_gateway_retries",
            "Requests sent again to another endpoint after a failure before the first byte.",
            ["model"], registry=r)
        self.in_flight = prometheus_client.Gauge(
            "llmserver_gateway_endpoint_in_flight", "Requests in flight per endpoint.",
            ["model", "endpoint"], registry=r)
        self.upstream_requests = prometheus_client.Counter(
            "llmserver_gateway_upstream_requests", "Upstream attempts, by model and endpoint.",
            ["model", "endpoint"], registry=r)
        self.routes = prometheus_client.Gauge(
            "llmserver_gateway_routes", "Models in the routing table.", registry=r)
        self.ready_endpoints = prometheus_client.Gauge(
            "llmserver_gateway_ready_endpoints", "Ready endpoints per model (proxy-mode models count 1).",
            ["model"], registry=r)
        self.held = prometheus_client.Gauge(
            "llmserver_gateway_held_requests", "Requests held now, waiting for the model to get a ready endpoint.",
            ["model"], registry=r)
        self.hold_seconds = prometheus_client.Histogram(
            "llmserver_gateway_hold_seconds", "Time requests were held (forwarded, timed out or client gone).",
            ["model"], buckets=HOLD_BUCKETS, registry=r)
        self.hold_rejected = prometheus_client.Counter(
            "llmserver_gateway_hold_rejected", "Held requests refused: 429 at the bound (limit), 503 after "
            "holdSeconds (timeout).", ["model", "reason"], registry=r)
        self.fallbacks = prometheus_client.Counter(
            "llmserver_gateway_fallback_requests", "Requests for a cold model answered by its fallback model.",
            ["model", "fallback"], registry=r)

        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached: labels() validates and locks, a dict lookup is cheaper
        on the hot path (several metrics per request)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def forget_endpoints(self, routed: set[tuple[str, str]], busy: set[str]) -> None:
        """Drops the in-flight series of (model, endpoint) pairs no longer routed to and idle
        (pods come and go; their series would otherwise stay forever)."""
        gone = [k for k in self._children
                if k[0] == id(self.in_flight) and k[1] not in routed and k[1][1] not in busy]
        for key in gone:
            del self._children[key]
            try:
                self.in_flight.remove(*key[1])
            except KeyError:
                pass

    def render(self) -> bytes:
        """The text exposition format."""
        return prometheus_client.generate_latest(self.registry)
