"""status.adapters from what was observed: each phase with its message, the Job's own progress
carried over, removed adapters shown while replicas still hold them, and the Events of failures."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pytest
from llmserver_operator import adapter_status, status

pytestmark = pytest.mark.timeout(60)

RUNNING = {"metadata": {"name": "tiny-adapter-1"}, "status": {"active": 1}}
DONE = {"metadata": {"name": "tiny-adapter-1"}, "status": {"succeeded": 1}}
FAILED = {"metadata": {"name": "tiny-adapter-1"},
          "status": {"failed": 3,
                     "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
FAILED_POD = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {"containerStatuses": [
    {"state": {"terminated": {"exitCode": 1, "message": "download failed: sha256 mismatch"}}}]}}


def spec(replicas: int = 2, names: tuple[str, ...] = ("sql",)) -> llmserver_api.LLMServerSpec:
    adapters = [{"name": n, "source": {"huggingFace": {"repo": f"acme/{n}"}}} for n in names]
    return llmserver_api.LLMServerSpec.model_validate({"model": "tiny", "backend": "vllm", "replicas": replicas,
                                                       "source": {"huggingFace": {"repo": "acme/tiny"}},
                                                       "adapters": adapters})


def one(seen: adapter_status.Seen, previous: list[dict[str, Any]] | None = None, live: bool = True,
        **kw: Any) -> dict[str, Any]:
    return adapter_status.compute(spec(**kw), {"sql": seen}, previous, live)[0]


def test_phases() -> None:
    assert one(adapter_status.Seen())["phase"] == "Pending"
    progress = [{"name": "sql", "download": {"bytesDone": 512, "bytesTotal": 1024}}]
    downloading = one(adapter_status.Seen(job=RUNNING), progress)
    assert downloading["phase"] == "Downloading" and "50%" in downloading["message"]
    assert downloading["download"] == {"bytesDone": 512, "bytesTotal": 1024}  # the Job's report, kept
    failed = one(adapter_status.Seen(job=FAILED, job_pods=[FAILED_POD]))
    assert failed["phase"] == "Failed" and "sha256 mismatch" in failed["message"]
    waiting = one(adapter_status.Seen(job=DONE, downloaded=True))
    assert waiting["phase"] == "Pending" and "loading it" in waiting["message"]
    rolling = one(adapter_status.Seen(job=DONE, downloaded=True), live=False)
    assert "rolling out" in rolling["message"]
    ready = one(adapter_status.Seen(job=DONE, downloaded=True, ready_replicas=1))
    assert (ready["phase"], ready["readyReplicas"], ready["message"]) == ("Ready", 1, "served by 1/2 replicas")
    why = "replica a refused to load it: HTTP 400: x"
    refused = one(adapter_status.Seen(job=DONE, downloaded=True, load_error=why))
    assert refused["phase"] == "Failed" and "refused" in refused["message"]
    secret = one(adapter_status.Seen(problem="Secret 's3' was not found"))
    assert secret["phase"] == "Pending"
    unmounted = one(adapter_status.Seen(problem="not mounted", permanent=True))
    assert unmounted["phase"] == "Failed"


def test_removed_adapters_stay_listed_while_held() -> None:
    out = adapter_status.compute(spec(names=()), {}, [{"name": "old", "phase": "Ready"}], True, {"old": 1})
    assert out == [{"name": "old", "phase": "Pending", "readyReplicas": 1,
                    "message": "removed from spec.adapters; unloading it from 1 replicas"}]
    assert adapter_status.compute(spec(names=()), {}, [{"name": "old"}], True, {}) == []


def test_entries_follow_spec_order() -> None:
    out = adapter_status.compute(spec(names=("b", "a")), {}, None, True)
    assert [e["name"] for e in out] == ["b", "a"]


def test_events_on_failure_and_readiness_once() -> None:
    failed = [{"name": "sql", "phase": "Failed", "message": "download failed: x", "readyReplicas": 0}]
    happened = adapter_status.transitions([{"name": "sql", "phase": "Downloading", "message": "m"}], failed)
    assert [(e.type, e.reason) for e in happened] == [("Warning", "AdapterFailed")]
    assert adapter_status.transitions(failed, failed) == []
    ready = [{"name": "sql", "phase": "Ready", "message": "served by 1/1 replicas", "readyReplicas": 1}]
    assert [e.reason for e in adapter_status.transitions(failed, ready)] == ["AdapterReady"]
    more = [{**ready[0], "message": "served by 2/2 replicas"}]
    assert adapter_status.transitions(ready, more) == []


def test_status_compute_writes_adapters_only_when_given() -> None:
    base = dict(spec=spec(), generation=1, previous=None, endpoint="http://gw", now="t")
    without = status.compute(observed=status.Observed(), **base)
    assert "adapters" not in without
    entries = [{"name": "sql", "phase": "Pending", "readyReplicas": 0, "message": "m"}]
    with_entries = status.compute(observed=status.Observed(adapters=entries), **base)
    assert with_entries["adapters"] == entries
    assert status.changed({**with_entries, "adapters": []}, with_entries)
    assert not status.changed(with_entries, with_entries)
    assert with_entries["phase"] == without["phase"]  # an adapter never changes the server's phase
