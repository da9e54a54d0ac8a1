"""observe_repeated (the runtime's inter-token latency for tokens delivered together) leaves a
histogram exactly as that many `observe` calls would: same buckets, count and sum."""

from __future__ import annotations

import prometheus_client
import pytest
from llmserver_runtime.server import metrics


def _samples(registry: prometheus_client.CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}


@pytest.mark.parametrize(("amount", "times"), [(0.0003, 7), (0.004, 1), (0.004, 0), (0.01, 3), (9.0, 5), (0.0005, 2)])
def test_repeated_observations_equal_one_by_one(amount: float, times: int) -> None:
    one_by_one, at_once = prometheus_client.CollectorRegistry(), prometheus_client.CollectorRegistry()
    buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025)
    expected = prometheus_client.Histogram("gap_seconds", "x", ["model"], buckets=buckets, registry=one_by_one)
    actual = prometheus_client.Histogram("gap_seconds", "x", ["model"], buckets=buckets, registry=at_once)
    child = expected.labels(model="m")
    for _ in range(times):
        child.observe(amount)
    metrics.observe_repeated(actual.labels(model="m"), amount, times)
    assert _samples(at_once) == pytest.approx(_samples(one_by_one))
    assert _samples(at_once)[("gap_seconds_count", (("model", "m"),))] == times
