"""Prometheus metrics of one runtime: one schema for every backend.

Each app gets its own CollectorRegistry (no global registry), so tests can run several apps in
one process. Names follow Prometheus conventions: `llmserver_` prefix, base units in the name,
`_total` for counters. Labels: `model` (the served name, never the client's string, so cardinality
stays bounded), `endpoint` (chat, completions, embeddings, rerank, models) and `status` (HTTP code,
499 when the client went away)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import prometheus_client
from prometheus_client import core, registry

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_GAP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def observe_repeated(histogram: Any, amount: float, times: int) -> None:
    """`times` observations of `amount` at the cost of one. One `observe` per generated token was
    the event loop's costliest call per token (it holds the GIL the decode thread needs); this
    updates the sum and the one bucket that `observe` would, through prometheus_client's Histogram
    internals (`_sum`, `_buckets`, `_upper_bounds`: unchanged since 0.4), else falls back to the loop."""
    buckets, bounds, total = (getattr(histogram, name, None) for name in ("_buckets", "_upper_bounds", "_sum"))
    if times <= 1 or buckets is None or bounds is None or total is None:
        for _ in range(times):
            histogram.observe(amount)
        return
    total.inc(amount * times)
    for bucket, bound in zip(buckets, bounds, strict=False):
        if amount <= bound:
            bucket.inc(times)
            return


class _BatchCollector(registry.Collector):
    """Batch metrics of an engine that batches in-process, read from its counters at scrape time
    (the engine's model thread only bumps plain counters; no metric call on the hot path)."""

    def __init__(self, model: str, passes_by_rows: Callable[[], Mapping[int, int] | None]) -> None:
        self.model = model
        self.passes_by_rows = passes_by_rows

    def collect(self) -> Iterator[core.Metric]:
        counts = self.passes_by_rows()
        if counts is None:  # the engine does not batch: no series
            return
        steps = sum(counts.values())
        buckets = [(str(float(bound)), sum(n for rows, n in counts.items() if rows <= bound)) for bound in _BATCH_BUCKETS]
        buckets.append(("+Inf", steps))
        size = core.HistogramMetricFamily(
            "llmserver_batch_size", "Sequences one engine decode step carried.", labels=["model"]
        )
        size.add_metric([self.model], buckets, sum(rows * n for rows, n in counts.items()))
        yield size
        total = core.CounterMetricFamily(
            "llmserver_decode_steps", "Engine decode steps (forward passes over running sequences).", labels=["model"]
        )
        total.add_metric([self.model], steps)
        yield total


class RuntimeMetrics:
    """The runtime's metrics, registered in a private registry."""

    def __init__(self, model: str, backend: str) -> None:
        self.model = model
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prometheus_client.Counter(
            "llmserver_requests", "Requests answered, by endpoint and HTTP status.",
            ["model", "endpoint", "status"], registry=r,
        )  # fmt: skip
        self.prompt_tokens = prometheus_client.Counter(
            "llmserver_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.completion_tokens = prometheus_client.Counter(
            "llmserver_completion_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.time_to_first_token = prometheus_client.Histogram(
            "llmserver_time_to_first_token_seconds", "From request arrival to the first generated token.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inter_token_latency = prometheus_client.Histogram(
            "llmserver_inter_token_latency_seconds", "Gap between consecutive generated tokens.",
            ["model"], buckets=_TOKEN_GAP_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_duration = prometheus_client.Histogram(
            "llmserver_request_duration_seconds", "End-to-end request latency, queueing included.",
            ["model", "endpoint"], buckets=_REQUEST_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = prometheus_client.Gauge(
            "llmserver_queue_depth", "Requests waiting for a free slot.", ["model"], registry=r
        )
        self.in_flight = prometheus_client.Gauge(
            "llmserver_requests_in_flight", "Requests running on the engine.", ["model"], registry=r
        )
        self.max_concurrency = prometheus_client.Gauge(
            "llmserver_max_concurrency", "Requests the server runs at once.", ["model"], registry=r
        )
        self.model_load_seconds = prometheus_client.Gauge(
            "llmserver_model_load_seconds", "Time the last model load took (warm-up excluded).",
            ["model", "backend"], registry=r,
        )  # fmt: skip
        self.model_ready = prometheus_client.Gauge(
            "llmserver_model_ready", "1 once the model is loaded and warmed up.", ["model"], registry=r
        )
        self.backend = backend
        # Pre-create the per-model children so every series exists from the first scrape.
        self.ttft = self.time_to_first_token.labels(model=model)
        self.itl = self.inter_token_latency.labels(model=model)
        self.prompt = self.prompt_tokens.labels(model=model)
        self.completion = self.completion_tokens.labels(model=model)
        self.ready = self.model_ready.labels(model=model)
        self.ready.set(0)

    def track_admission(self, waiting: Callable[[], int], running: Callable[[], int], limit: int) -> None:
        """Gauges read live from the admission controller at scrape time."""
        self.queue_depth.labels(model=self.model).set_function(waiting)
        self.in_flight.labels(model=self.model).set_function(running)
        self.max_concurrency.labels(model=self.model).set(limit)

    def track_batching(self, passes_by_rows: Callable[[], Mapping[int, int] | None]) -> None:
        """Batch size histogram and decode step counter, read at scrape time from the engine's
        decode passes by rows carried (None: the engine does not batch in-process)."""
        self.registry.register(_BatchCollector(self.model, passes_by_rows))

    def loaded(self, seconds: float) -> None:
        """Record the load time."""
        self.model_load_seconds.labels(model=self.model, backend=self.backend).set(seconds)

    def request_done(self, endpoint: str, status: int | str, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(model=self.model, endpoint=endpoint, status=str(status)).inc()
        self.request_duration.labels(model=self.model, endpoint=endpoint).observe(seconds)

    def token_gaps(self, gap: float, tokens: int) -> None:
        """`tokens` inter-token latencies of `gap` seconds each (tokens delivered together share
        the gap since the previous delivery)."""
        observe_repeated(self.itl, gap, tokens)

    def tokens(self, prompt: int, completion: int) -> None:
        """Add one request's token usage."""
        if prompt:
            self.prompt.inc(prompt)
        if completion:
            self.completion.inc(completion)

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return prometheus_client.generate_latest(self.registry)
