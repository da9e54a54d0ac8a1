"""status.adapters, computed by one pure function from what the reconciler saw of each adapter.

Each entry: `phase` (Pending, Downloading, Ready, Failed), `message`, `readyReplicas` (ready
replicas serving it) and `download`, which the adapter's download Job writes itself
(`--report-adapter`) and which is only carried over here. An adapter's failure is its own: it
never changes the server's phase or conditions, so the base model keeps serving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import llmserver_api

from llmserver_operator import events, status, workloads

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the reconciler observed of one adapter."""

    job: Manifest | None = None  # its download Job (None: not created, or a PVC adapter)
    job_pods: Sequence[Manifest] = ()  # the Job's pods once it has failed (their termination message)
    downloaded: bool = False  # in the cache (Job succeeded) or on a mounted claim
    problem: str | None = None  # why it cannot be downloaded or served now (a Secret, an unmounted claim)
    permanent: bool = False  # `problem` needs a spec change (Failed), not just time (Pending)
    ready_replicas: int = 0  # ready replicas serving it
    load_error: str | None = None  # why a replica refused to load it (live engines)


def _progress(download: Mapping[str, Any] | None) -> str:
    return status.download_progress(download, "the adapter's download Job is running")


def _entry(name: str, seen: Seen, previous: Mapping[str, Any], wanted: int, live: bool) -> Manifest:
    """(phase, message) of one adapter, with its carried download progress."""
    job = seen.job
    if seen.problem is not None:
        phase, message = ("Failed" if seen.permanent else "Pending"), seen.problem
    elif job is not None and workloads.job_condition(job, "Failed") is not None:
        phase, message = "Failed", workloads.job_failure_message(job, seen.job_pods)
    elif not seen.downloaded:
        phase = "Pending" if job is None else "Downloading"
        message = "creating the adapter's download Job" if job is None else _progress(previous.get("download"))
    elif seen.ready_replicas > 0:
        phase, message = "Ready", f"served by {seen.ready_replicas}/{wanted} replicas"
    elif seen.load_error is not None:
        phase, message = "Failed", seen.load_error
    elif wanted == 0:
        phase, message = "Pending", "downloaded; spec.replicas is 0: no replica serves it"
    else:
        how = "loading it on the ready replicas" if live else "rolling out pods that start with it"
        phase, message = "Pending", f"downloaded; {how}"
    out: Manifest = {"name": name, "phase": phase, "readyReplicas": seen.ready_replicas, "message": message}
    if previous.get("download") is not None:
        out["download"] = previous["download"]
    return out


def compute(spec: llmserver_api.LLMServerSpec, seen: Mapping[str, Seen], previous: Sequence[Mapping[str, Any]] | None,
            live: bool, unloading: Mapping[str, int] | None = None) -> list[Manifest]:
    """One entry per spec.adapters item, in spec order; then adapters removed from the spec that
    replicas still hold (`unloading`: name -> replicas), Pending until they are unloaded."""
    before = {e.get("name"): e for e in previous or () if isinstance(e, Mapping)}
    out = [_entry(a.name, seen.get(a.name, Seen()), before.get(a.name) or {}, spec.replicas, live)
           for a in spec.adapters]
    named = {a.name for a in spec.adapters}
    for name, count in sorted((unloading or {}).items()):
        if name not in named:
            out.append({"name": name, "phase": "Pending", "readyReplicas": count,
                        "message": f"removed from spec.adapters; unloading it from {count} replicas"})
    return out


def transitions(before: Sequence[Mapping[str, Any]] | None,
                after: Sequence[Mapping[str, Any]]) -> list[events.Happened]:
    """Events for adapters that just failed (Warning AdapterFailed) or became ready (AdapterReady)."""
    old = {e.get("name"): e for e in before or () if isinstance(e, Mapping)}
    out: list[events.Happened] = []
    for entry in after:
        previous = old.get(entry["name"]) or {}
        if entry["phase"] == previous.get("phase") and entry["message"] == previous.get("message"):
            continue
        if entry["phase"] == "Failed":
            out.append(events.Happened("Warning", "AdapterFailed", f"adapter {entry['name']!r}: {entry['message']}"))
        elif entry["phase"] == "Ready" and previous.get("phase") != "Ready":
            out.append(events.Happened("Normal", "AdapterReady", f"adapter {entry['name']!r}: {entry['message']}"))
    return out
