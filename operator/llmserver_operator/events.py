"""Which Kubernetes Events a status change deserves. Pure: previous and new status in, events out.

Events are derived from transitions, never from passes, so a server that waits (for a Secret, a
download, a Mac) posts one event when it starts waiting and one when that ends, however many
passes run meanwhile; a resync that changes nothing posts nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from llmserver_api import llmserver

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Happened:
    """One Event to post on the LLMServer."""

    type: str  # Normal | Warning
    reason: str
    message: str


def _condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == kind), {})


def transitions(before: Mapping[str, Any] | None, after: Mapping[str, Any],
                placement: llmserver.Placement | None = None) -> list[Happened]:
    """Events for what changed from `before` to `after` (the operator-owned status fields)."""
    out: list[Happened] = []
    was, now = _condition(before, "Downloaded"), _condition(after, "Downloaded")
    if now.get("reason") == "Downloading" and was.get("reason") != "Downloading":
        out.append(Happened("Normal", "DownloadStarted", now.get("message") or "the download Job is running"))
    if now.get("reason") == "DownloadComplete" and was.get("reason") != "DownloadComplete":
        out.append(Happened("Normal", "DownloadFinished", now.get("message") or "the model is in the cache"))
    old_node = ((before or {}).get("placement") or {}).get("node")
    if placement is not None and placement.node != old_node:
        out.append(Happened("Normal", "PlacedOnAppleNode", placement.reason or f"placed on AppleNode {placement.node!r}"))
    # status.replicas is the observed count: it moves on its own during a first rollout, so only a
    # server that was serving (or unloaded) reports that its runtime was scaled
    had, has = (before or {}).get("replicas"), after.get("replicas")
    settled = (before or {}).get("phase") in ("Ready", "Unloaded")
    if settled and had is not None and has is not None and has != had:
        out.append(Happened("Normal", "Scaled", f"runtime replicas went from {had} to {has}"))
    ready_before, ready = int((before or {}).get("readyReplicas") or 0), int(after.get("readyReplicas") or 0)
    was_ready, is_ready = _condition(before, "Ready"), _condition(after, "Ready")
    # every replica ready as the server becomes Ready (always so with one): the Ready event says it
    folded = is_ready.get("status") == "True" and was_ready.get("status") != "True" and ready == after.get("replicas")
    if ready > ready_before and after.get("replicas") and not folded:
        out.append(Happened("Normal", "ReplicaReady", f"{ready}/{after.get('replicas')} replicas ready"))
    if is_ready.get("status") == "True" and was_ready.get("status") != "True":
        out.append(Happened("Normal", "Ready", after.get("message") or is_ready.get("message") or "ready"))
    was_degraded, degraded = _condition(before, "Degraded"), _condition(after, "Degraded")
    if degraded.get("status") == "True" and (was_degraded.get("status"), was_degraded.get("reason")) != ("True", degraded.get("reason")):
        out.append(Happened("Warning", degraded.get("reason") or "Degraded", degraded.get("message") or ""))
    return out
