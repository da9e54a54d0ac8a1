"""Drift repair and ownership by UID, with the real operator and the emulator's asynchronous GC:
a deleted child comes back within seconds, and a recreated server of the same name never adopts
the children the first one left for garbage collection."""

from __future__ import annotations

from typing import Any

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
LLMS = fake_cluster.LLMS
RBAC = "rbac.authorization.k8s.io/v1"
OURS = "app.kubernetes.io/managed-by=llmserver-operator"


def gguf(model: str) -> dict[str, Any]:
    return {"model": model, "backend": "llama-cpp", "source": {"huggingFace": {"repo": f"acme/{model}", "file": "m.gguf"}}}


@pytest.mark.parametrize(("api_version", "kind", "suffix"), [("v1", "Service", ""), ("apps/v1", "Deployment", "")])
def test_a_deleted_child_returns(cluster: Cluster, ns: str, api_version: str, kind: str, suffix: str) -> None:
    cluster.apply_server("drift", ns, **gguf(f"drift-{kind.lower()}"))
    cluster.wait_phase("drift", "Ready", ns)
    old = cluster.kube.get(api_version, kind, f"drift{suffix}", ns)
    cluster.kube.delete(api_version, kind, f"drift{suffix}", ns)
    back = cluster.kube.wait_for(lambda: (obj := cluster.kube.get(api_version, kind, f"drift{suffix}", ns)) is not None
                                 and obj["metadata"]["uid"] != old["metadata"]["uid"] and obj, 10, f"{kind} recreated")
    assert back["metadata"]["ownerReferences"][0]["uid"] == cluster.server("drift", ns)["metadata"]["uid"]
    cluster.wait_phase("drift", "Ready", ns)


def test_deleted_download_identity_returns_while_downloading(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("hold", name_prefix="ident-")
    cluster.apply_server("ident", ns, **gguf("ident"))
    cluster.wait_phase("ident", "Downloading", ns)
    for api_version, kind in (("v1", "ServiceAccount"), (RBAC, "Role"), (RBAC, "RoleBinding")):
        cluster.kube.delete(api_version, kind, "ident-download", ns)
        cluster.kube.wait_for(lambda: cluster.kube.get(api_version, kind, "ident-download", ns), 10, f"{kind} recreated")


def test_a_deleted_cache_claim_downloads_again(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("claim", ns, **{**gguf("claim"), "cache": {"claimName": "claim-cache"}})
    cluster.wait_phase("claim", "Ready", ns)
    [first_job] = cluster.kube.list("batch/v1", "Job", ns, labels=OURS)
    cluster.kube.delete("v1", "PersistentVolumeClaim", "claim-cache", ns)
    cluster.kube.wait_for(lambda: cluster.kube.get("v1", "PersistentVolumeClaim", "claim-cache", ns), 10, "claim recreated")
    cluster.kube.wait_for(lambda: [j["metadata"]["uid"] for j in cluster.kube.list("batch/v1", "Job", ns, labels=OURS)]
                          not in ([], [first_job["metadata"]["uid"]]), 10, "a new download Job")
    cluster.wait_phase("claim", "Ready", ns)


def test_a_recreated_server_never_adopts_the_old_ones_children(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("again", ns, **gguf("again"))
    cluster.wait_phase("again", "Ready", ns)
    kinds = (("apps/v1", "Deployment"), ("v1", "Service"), ("batch/v1", "Job"), ("v1", "ServiceAccount"), (RBAC, "Role"),
             (RBAC, "RoleBinding"))

    def children() -> list[dict[str, Any]]:
        return [o for v, k in kinds for o in cluster.kube.list(v, k, ns, labels=OURS) if not o["metadata"].get("deletionTimestamp")]

    old = {o["metadata"]["uid"] for o in children()}
    assert len(old) == 6
    cluster.kube.gc.pause()  # the API server's garbage collector is late: the old children are all still there
    try:
        cluster.kube.delete(LLMS, "LLMServer", "again", ns)
        cluster.kube.wait_for(lambda: cluster.server("again", ns) is None, 10)
        uid = cluster.apply_server("again", ns, **gguf("again"))["metadata"]["uid"]
        cluster.wait_phase("again", "Ready", ns)

        def only_new() -> bool:
            now = children()
            return len(now) == 6 and all(o["metadata"]["ownerReferences"][0]["uid"] == uid for o in now)

        cluster.kube.wait_for(only_new, 30, "children of the new server only")
        assert not {o["metadata"]["uid"] for o in children()} & old  # recreated, none adopted
        for obj in children():
            assert [ref["uid"] for ref in obj["metadata"]["ownerReferences"]] == [uid]
    finally:
        cluster.kube.gc.resume()
    cluster.kube.gc.idle()
    cluster.wait_phase("again", "Ready", ns)
    assert len(children()) == 6


def test_drift_is_repaired_after_the_api_server_dropped_the_watches(cluster: Cluster, ns: str) -> None:
    """A real API server closes watch streams whenever it likes: kopf resumes them and repair goes on."""
    cluster.apply_server("dropped", ns, **gguf("dropped"))
    cluster.wait_phase("dropped", "Ready", ns)
    assert cluster.kube.faults.drop_watches(kind="Service") >= 1
    old = cluster.kube.get("v1", "Service", "dropped", ns)
    cluster.kube.delete("v1", "Service", "dropped", ns)
    cluster.kube.wait_for(lambda: (obj := cluster.kube.get("v1", "Service", "dropped", ns)) is not None
                          and obj["metadata"]["uid"] != old["metadata"]["uid"], 15, "Service recreated")
