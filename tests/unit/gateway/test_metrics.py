"""Gateway metrics: Prometheus names, cached label children, pruning of vanished endpoints."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from llmserver_gateway import metrics


def _samples(m: metrics.GatewayMetrics) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}


def test_children_are_cached_and_counted() -> None:
    m = metrics.GatewayMetrics()
    first = m.child(m.requests, "tiny", "200")
    assert m.child(m.requests, "tiny", "200") is first
    first.inc()
    m.child(m.requests, "tiny", "200").inc()
    m.child(m.latency, "tiny").observe(0.2)
    samples = _samples(m)
    assert samples[("llmserver_gateway_requests_total", (("model", "tiny"), ("status", "200")))] == 2
    assert samples[("llmserver_gateway_request_duration_seconds_count", (("model", "tiny"),))] == 1


def test_vanished_idle_endpoints_lose_their_in_flight_series() -> None:
    m = metrics.GatewayMetrics()
    for url in ("http://a", "http://b", "http://c"):
        m.child(m.in_flight, "tiny", url).inc()
    m.child(m.in_flight, "tiny", "http://a").dec()
    m.child(m.in_flight, "tiny", "http://b").dec()
    # a: still routed; b: gone and idle; c: gone but a request is still running on it
    m.forget_endpoints({("tiny", "http://a")}, busy={"http://c"})
    endpoints = {dict(labels)["endpoint"] for name, labels in _samples(m)
                 if name == "llmserver_gateway_endpoint_in_flight"}
    assert endpoints == {"http://a", "http://c"}
    m.child(m.in_flight, "tiny", "http://b").inc()  # coming back works (a fresh child)
    assert _samples(m)[("llmserver_gateway_endpoint_in_flight", (("endpoint", "http://b"), ("model", "tiny")))] == 1
