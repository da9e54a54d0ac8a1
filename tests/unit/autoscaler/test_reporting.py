"""What a decision writes besides the scale: status.autoscaling only when it changes what a reader acts
on (never a no-op write), and the ScaledUp / ScaledDown Event with the numbers."""

from __future__ import annotations

import llmserver_api
from llmserver_api import elastic
from llmserver_operator.autoscaler import decision, reporting

NOW, LATER = "2026-12-02T21:00:00Z", "2026-12-02T21:05:00Z"
SERVER = {"metadata": {"name": "chat", "namespace": "ml", "uid": "u-1", "resourceVersion": "42"}}


def test_the_first_round_writes_the_view_and_a_steady_one_writes_nothing() -> None:
    steady = decision.Decision(desired=2, average=9.5)
    first = reporting.status_patch(None, steady, NOW)
    assert first == {"desiredReplicas": 2, "averageInFlight": 9.5}
    elastic.AutoscalingStatus.model_validate(first)
    assert reporting.status_patch(first, decision.Decision(desired=2, average=11.0), LATER) is None


def test_a_new_desire_is_written_with_the_last_decision_kept() -> None:
    before = {"desiredReplicas": 3, "averageInFlight": 20.0, "lastScaleTime": NOW, "lastDecision": "up"}
    patch = reporting.status_patch(before, decision.Decision(desired=1, average=2.0), LATER)
    assert patch == {"desiredReplicas": 1, "averageInFlight": 2.0, "lastScaleTime": NOW, "lastDecision": "up"}


def test_a_scale_records_when_and_why() -> None:
    scaled = decision.Decision(desired=4, average=30.0, replicas=4, direction="up", reason="average in flight 30")
    patch = reporting.status_patch({"desiredReplicas": 4, "averageInFlight": 1.0}, scaled, LATER)
    assert patch == {"desiredReplicas": 4, "averageInFlight": 30.0, "lastScaleTime": LATER,
                     "lastDecision": "average in flight 30"}


def test_events_name_the_direction_and_the_numbers() -> None:
    down = decision.Decision(desired=0, average=0.0, replicas=0, direction="down", reason="idle for 300s")
    event = reporting.event(SERVER, 2, down, NOW)
    assert (event["reason"], event["type"]) == ("ScaledDown", "Normal")
    assert event["message"] == "replicas 2 -> 0 (desired 0): idle for 300s"
    assert event["involvedObject"] == {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "name": "chat",
                                       "namespace": "ml", "uid": "u-1", "resourceVersion": "42"}
    assert event["metadata"] == {"generateName": "chat.", "namespace": "ml"}
    up = decision.Decision(desired=3, average=20.0, replicas=3, direction="up", reason="x")
    assert reporting.event(SERVER, 0, up, NOW)["reason"] == "ScaledUp"
