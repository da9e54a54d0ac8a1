"""Kubernetes Events on the LLMServer for each step a user waits on, once per change: no Event
and no write at all while a server waits for something (kopf used to post an Error event and
patch its progress annotations on every retry)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    """(type, reason) of the Events about the server, oldest first."""
    found = [e for e in cluster.kube.list("v1", "Event", ns) if (e.get("involvedObject") or {}).get("name") == name
             and (e.get("involvedObject") or {}).get("kind") == "LLMServer"]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e.get("type"), e.get("reason")) for e in found]


def test_a_download_and_rollout_post_one_event_per_step(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("hold", name_prefix="steps-")
    cluster.apply_server("steps", ns, model="steps", backend="llama-cpp",
                         source={"huggingFace": {"repo": "acme/steps", "file": "m.gguf"}})
    cluster.wait_phase("steps", "Downloading", ns)
    cluster.kube.wait_for(lambda: ("Normal", "DownloadStarted") in events(cluster, ns, "steps"), 10)
    [job] = cluster.kube.list("batch/v1", "Job", ns)
    cluster.kubelet.finish_job(ns, job["metadata"]["name"], "succeed")
    cluster.wait_phase("steps", "Ready", ns)
    cluster.kube.wait_for(lambda: ("Normal", "Ready") in events(cluster, ns, "steps"), 10)
    cluster.apply_server("steps", ns, model="steps", backend="llama-cpp", replicas=2,
                         source={"huggingFace": {"repo": "acme/steps", "file": "m.gguf"}})
    cluster.kube.wait_for(lambda: cluster.status("steps", ns).get("readyReplicas") == 2, 30)
    wanted = [("Normal", "DownloadStarted"), ("Normal", "DownloadFinished"), ("Normal", "Ready"),  # 1/1: folded into Ready
              ("Normal", "Scaled"), ("Normal", "ReplicaReady")]
    cluster.kube.wait_for(lambda: events(cluster, ns, "steps") == wanted, 10, f"events: {events(cluster, ns, 'steps')}")
    time.sleep(1)  # resyncs and child events meanwhile post nothing more
    assert events(cluster, ns, "steps") == wanted


def test_waiting_for_a_secret_writes_nothing_until_it_appears(cluster: Cluster, ns: str) -> None:
    token = {"tokenSecretRef": {"name": "hf", "key": "token"}}
    spec: dict[str, Any] = {"model": "waiter", "backend": "llama-cpp",
                            "source": {"huggingFace": {"repo": "acme/gated", "file": "m.gguf", **token}}}
    cluster.apply_server("waiter", ns, **spec)
    cluster.wait_phase("waiter", "Pending", ns)
    cluster.kube.wait_for(lambda: events(cluster, ns, "waiter") == [("Warning", "SecretNotFound")], 10)
    before = len(cluster.kube.requests)
    time.sleep(3)  # about six re-checks at retry_delay_seconds=0.5
    rechecks = [r for r in cluster.kube.requests[before:] if r.method == "GET" and r.path.endswith("/secrets/hf")]
    assert len(rechecks) >= 3  # it does keep looking
    assert cluster.kube.writes(before) == []  # but writes nothing: no status, no annotations, no events
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": ns},
                         "stringData": {"token": "hf_x"}})
    cluster.wait_phase("waiter", "Ready", ns)
    cluster.kube.wait_for(lambda: ("Normal", "Ready") in events(cluster, ns, "waiter"), 10)
    assert events(cluster, ns, "waiter")[:2] == [("Warning", "SecretNotFound"), ("Normal", "DownloadStarted")]
