"""AdapterFailed / AdapterReady Events from the status.adapters a Mac's agent writes
(llmserver_operator.apple.adapter_events): only for Mac-placed servers, only on changes seen after
the initial listing, with the cluster servers' reasons and messages."""

from __future__ import annotations

from typing import Any

from llmserver_operator.apple import adapter_events

KEY = ("ml", "tiny-mac")


def body(*entries: tuple[str, str, str], node: str | None = "mac-a") -> dict[str, Any]:
    status: dict[str, Any] = {"adapters": [{"name": n, "phase": p, "readyReplicas": int(p == "Ready"), "message": m}
                                           for n, p, m in entries]}
    if node is not None:
        status["placement"] = {"node": node}
    return {"metadata": {"namespace": "ml", "name": "tiny-mac"}, "status": status}


def reasons(happened: list) -> list[tuple[str, str, str]]:
    return [(h.type, h.reason, h.message) for h in happened]


def test_ready_and_failed_adapters_are_posted_once_each() -> None:
    seen = adapter_events.MacAdapterEvents()
    assert seen.observe(KEY, body(("good", "Pending", "waiting")), "ADDED") == []
    happened = seen.observe(KEY, body(("good", "Ready", "served by mac-a"), ("bad", "Failed", "sha256 mismatch")),
                            "MODIFIED")
    assert reasons(happened) == [("Normal", "AdapterReady", "adapter 'good': served by mac-a"),
                                 ("Warning", "AdapterFailed", "adapter 'bad': sha256 mismatch")]
    same = body(("good", "Ready", "served by mac-a"), ("bad", "Failed", "sha256 mismatch"))
    assert seen.observe(KEY, same, "MODIFIED") == []  # e.g. the operator's own phase write
    back = seen.observe(KEY, body(("good", "Pending", "replicas 0"), ("bad", "Failed", "sha256 mismatch")), "MODIFIED")
    assert back == []
    again = seen.observe(KEY, body(("good", "Ready", "served by mac-a"), ("bad", "Failed", "sha256 mismatch")),
                         "MODIFIED")
    assert reasons(again) == [("Normal", "AdapterReady", "adapter 'good': served by mac-a")]


def test_the_initial_listing_only_records() -> None:
    seen = adapter_events.MacAdapterEvents()
    assert seen.observe(KEY, body(("bad", "Failed", "gone")), None) == []  # posted before this operator started
    assert seen.observe(KEY, body(("bad", "Failed", "gone")), "MODIFIED") == []
    assert reasons(seen.observe(KEY, body(("bad", "Failed", "still gone")), "MODIFIED")) == [
        ("Warning", "AdapterFailed", "adapter 'bad': still gone")]


def test_servers_not_on_a_mac_and_malformed_entries_are_left_alone() -> None:
    seen = adapter_events.MacAdapterEvents()
    assert seen.observe(KEY, body(("good", "Ready", "x"), node=None), "MODIFIED") == []  # the reconciler posts those
    odd = body(("good", "Ready", "x"))
    odd["status"]["adapters"].append({"name": "half"})  # no phase, no message: not compared
    odd["status"]["adapters"].append("not an object")
    assert reasons(seen.observe(KEY, odd, "MODIFIED")) == [("Normal", "AdapterReady", "adapter 'good': x")]
    assert seen.observe(KEY, body(("good", "Ready", "x")), "DELETED") == []
    assert reasons(seen.observe(KEY, body(("good", "Ready", "x")), "MODIFIED")) == [
        ("Normal", "AdapterReady", "adapter 'good': x")]  # forgotten on deletion: a new server of that name
