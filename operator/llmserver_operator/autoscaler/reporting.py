"""What a decision shows besides the new replica count: the Event and status.autoscaling. Pure.

status.autoscaling is written only when it would change what a reader acts on: the desired count,
or a scale (lastScaleTime, lastDecision). averageInFlight rides along with those writes; the live
value is the operator's `llmserver_operator_autoscaler_in_flight` metric. So a steady load writes
nothing, and neither does a resync (no no-op writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import llmserver_api
from llmserver_api import elastic

from llmserver_operator.autoscaler import decision as decision_mod

Manifest = dict[str, Any]
COMPONENT = "llmserver-operator"
REASONS = {"up": "ScaledUp", "down": "ScaledDown"}


def status_patch(previous: Mapping[str, Any] | None, decided: decision_mod.Decision, now: str) -> Manifest | None:
    """status.autoscaling to merge-patch after `decided` at wall time `now` (RFC 3339); None: nothing to write."""
    previous = previous or {}
    scaled = decided.replicas is not None
    if previous and not scaled and previous.get("desiredReplicas") == decided.desired:
        return None
    status = elastic.AutoscalingStatus(
        desired_replicas=decided.desired, average_in_flight=decided.average,
        last_scale_time=now if scaled else previous.get("lastScaleTime"),
        last_decision=decided.reason if scaled else previous.get("lastDecision"))
    wire = status.to_wire()
    return None if wire == dict(previous) else wire


def event(server: Mapping[str, Any], current: int, decided: decision_mod.Decision, now: str) -> Manifest:
    """The core/v1 Event of a scale: reason ScaledUp / ScaledDown, the numbers and why in the message."""
    meta = server["metadata"]
    assert decided.replicas is not None and decided.direction is not None
    message = f"replicas {current} -> {decided.replicas} (desired {decided.desired}): {decided.reason}"
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer",
                           "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
                           "resourceVersion": meta.get("resourceVersion")},
        "reason": REASONS[decided.direction], "message": message[:1024], "type": "Normal",
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
