"""Pure parts of the retry and event machinery: backoff, timers replacing each other, and which
status transitions deserve an Event (one per change, none for a pass that changes nothing)."""

from __future__ import annotations

import threading
from typing import Any

from llmserver_api import llmserver
from llmserver_operator import events, retries


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [retries.backoff(n, 0.5, 5.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert retries.backoff(10_000, 1.0, 300.0) == 300.0


def test_failures_back_off_and_a_success_cancels_the_pending_retry() -> None:
    scheduled = retries.Retries(base=0.05, cap=0.2)
    fired = threading.Event()
    assert scheduled.failed("k", fired.set) == 0.05
    assert scheduled.failed("k", fired.set) == 0.1
    assert scheduled.failed("k", fired.set, at_least=3.0) == 3.0  # the server's Retry-After wins
    assert scheduled.failures("k") == 3 and scheduled.pending("k")
    scheduled.succeeded("k")
    assert not scheduled.pending("k") and scheduled.failures("k") == 0
    assert not fired.wait(0.3)
    scheduled.failed("k", fired.set)
    assert fired.wait(2.0)
    scheduled.close()


def test_a_newer_schedule_replaces_the_older_one() -> None:
    scheduled = retries.Retries(base=0.05, cap=1.0)
    calls: list[str] = []
    done = threading.Event()
    scheduled.waiting("k", lambda: calls.append("slow"), 5.0)
    scheduled.waiting("k", lambda: (calls.append("fast"), done.set()), 0.05)
    assert done.wait(2.0)
    assert calls == ["fast"]
    scheduled.close()
    scheduled.waiting("k", lambda: calls.append("after close"), 0.01)
    assert not scheduled.pending("k")


def _status(downloaded: str, ready: str = "False", degraded: tuple[str, str] = ("False", "AsExpected"),
            replicas: int = 1, ready_replicas: int = 0, **extra: Any) -> dict[str, Any]:
    return {"replicas": replicas, "readyReplicas": ready_replicas, "message": "m", **extra, "conditions": [
        {"type": "Downloaded", "status": "True" if downloaded == "DownloadComplete" else "False", "reason": downloaded,
         "message": downloaded},
        {"type": "Ready", "status": ready, "reason": "r", "message": "r"},
        {"type": "Degraded", "status": degraded[0], "reason": degraded[1], "message": degraded[1]}]}


def reasons(before: dict[str, Any] | None, after: dict[str, Any], placement: llmserver.Placement | None = None) -> list[str]:
    return [f"{e.type}/{e.reason}" for e in events.transitions(before, after, placement)]


def test_each_step_posts_once() -> None:
    assert reasons(None, _status("Downloading")) == ["Normal/DownloadStarted"]
    assert reasons(_status("Downloading"), _status("Downloading")) == []
    assert reasons(_status("Downloading"), _status("DownloadComplete")) == ["Normal/DownloadFinished"]
    assert reasons(_status("DownloadComplete"), _status("DownloadComplete", "True", ready_replicas=1)) == [
        "Normal/Ready"]  # one replica: ReplicaReady is folded into Ready
    assert reasons(_status("DownloadComplete", replicas=2), _status("DownloadComplete", "True", replicas=2, ready_replicas=1)) == [
        "Normal/ReplicaReady", "Normal/Ready"]  # not every replica yet: both
    assert reasons(_status("DownloadComplete", "True", ready_replicas=1, phase="Ready"),
                   _status("DownloadComplete", "True", replicas=3, ready_replicas=1)) == ["Normal/Scaled"]
    assert reasons(_status("DownloadComplete", "True", ready_replicas=1),
                   _status("DownloadComplete", "True", ready_replicas=1)) == []


def test_scaled_reports_observed_replicas_of_a_settled_server_only() -> None:
    """status.replicas is observed: pods appearing during the first rollout are no scaling."""
    starting = _status("DownloadComplete", replicas=0, phase="Starting")
    assert "Normal/Scaled" not in reasons(starting, _status("DownloadComplete", replicas=1, phase="Starting"))
    unloaded = _status("DownloadComplete", replicas=0, phase="Unloaded")
    [scaled] = [e for e in events.transitions(unloaded, _status("DownloadComplete", replicas=2)) if e.reason == "Scaled"]
    assert scaled.message == "runtime replicas went from 0 to 2"


def test_problems_post_one_warning_per_reason() -> None:
    waiting = _status("SecretNotFound", degraded=("True", "SecretNotFound"))
    assert reasons(None, waiting) == ["Warning/SecretNotFound"]
    assert reasons(waiting, waiting) == []
    crashing = _status("DownloadComplete", degraded=("True", "CrashLoopBackOff"))
    assert reasons(waiting, crashing) == ["Normal/DownloadFinished", "Warning/CrashLoopBackOff"]


def test_placement_on_a_mac_posts_when_the_node_changes() -> None:
    placed = llmserver.Placement(node="m1", address="10.0.0.1", port=None, reason="placed on m1: most free memory")
    after = _status("OnAppleNode")
    assert reasons({"placement": None}, after, placed) == ["Normal/PlacedOnAppleNode"]
    assert reasons({"placement": {"node": "m1"}}, after, placed) == []
    moved = llmserver.Placement(node="m2", address="10.0.0.2", port=None, reason="placed on m2")
    assert reasons({"placement": {"node": "m1"}}, after, moved) == ["Normal/PlacedOnAppleNode"]
