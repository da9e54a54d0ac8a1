"""Is a runtime being used? Requests go from the gateway straight to the runtime, so the host
(local mode, the Mac agent) learns about use from the runtime's own Prometheus metrics: the
request counters grow, or requests are in flight. Pure parsing; the hosting engine polls."""

from __future__ import annotations

import prometheus_client.parser


def signature(metrics_text: str) -> tuple[float, float]:
    """(requests counted so far, requests in flight now) from a runtime's /metrics text.

    Sums every counter whose name ends in `requests` (`*_requests_total` samples, except those of
    the `models` endpoint) and every gauge
    whose name mentions in-flight requests, so it does not depend on one exact metric name.
    """
    total = 0.0
    in_flight = 0.0
    for family in prometheus_client.parser.text_string_to_metric_families(metrics_text):
        name = family.name.lower()
        if family.type == "counter" and name.endswith("requests"):
            # listing models is not use: the gateway reads /v1/models of every replica (LoRA adapter probe)
            total += sum(s.value for s in family.samples
                         if s.name.endswith("_total") and s.labels.get("endpoint") != "models")  # fmt: skip
        elif family.type == "gauge" and ("in_flight" in name or "inflight" in name):
            in_flight += sum(s.value for s in family.samples)
    return total, in_flight


def used_since(previous: tuple[float, float] | None, current: tuple[float, float]) -> bool:
    """True when requests arrived since `previous` or are being served now."""
    return current[1] > 0 or (previous is not None and current[0] != previous[0])
