"""The real operator against the API emulator and kubelet simulator: create → Ready, failures, updates, deletes."""

from __future__ import annotations

from typing import Any

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
LLMS = fake_cluster.LLMS
OURS = "app.kubernetes.io/managed-by=llmserver-operator"


def gguf(repo: str = "acme/tiny-gguf", **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": repo, "file": "m.gguf"}}, **extra}


def names(cluster: Cluster, api_version: str, kind: str, ns: str, labels: str | None = OURS) -> list[str]:
    return [obj["metadata"]["name"] for obj in cluster.kube.list(api_version, kind, ns, labels=labels)]


def pods(cluster: Cluster, ns: str, server: str) -> list[dict[str, Any]]:
    return [p for p in cluster.kube.list("v1", "Pod", ns, labels=f"app.kubernetes.io/component=runtime,app.kubernetes.io/instance={server}")
            if not p["metadata"].get("deletionTimestamp")]


def test_create_walks_through_downloading_starting_ready(cluster: Cluster, ns: str) -> None:
    sim = cluster.kubelet
    assert sim is not None
    sim.set_job_outcome("hold", name_prefix="walk-")
    sim.set_pod_mode("walk", "pending", namespace=ns)
    server = cluster.apply_server("walk", ns, **gguf(model="walk"))  # its own name: no ModelNameConflict
    uid = server["metadata"]["uid"]

    cluster.wait_phase("walk", "Downloading", ns)
    [job] = cluster.kube.list("batch/v1", "Job", ns, labels=OURS)
    assert job["metadata"]["name"].startswith("walk-download-")
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": LLMS, "kind": "LLMServer", "name": "walk", "uid": uid,
                                                   "controller": True, "blockOwnerDeletion": True}]
    assert names(cluster, "v1", "ServiceAccount", ns) == ["walk-download"]
    assert names(cluster, "rbac.authorization.k8s.io/v1", "Role", ns) == ["walk-download"]
    assert names(cluster, "rbac.authorization.k8s.io/v1", "RoleBinding", ns) == ["walk-download"]
    [pvc] = cluster.kube.list("v1", "PersistentVolumeClaim", ns)
    assert pvc["metadata"]["name"] == "llmserver-model-cache" and "ownerReferences" not in pvc["metadata"]
    assert names(cluster, "v1", "Service", ns) == ["walk"]
    assert names(cluster, "apps/v1", "Deployment", ns) == []  # nothing to serve before the download
    assert cluster.condition("walk", "Downloaded", ns)["reason"] == "Downloading"

    sim.finish_job(ns, job["metadata"]["name"], "succeed")
    cluster.wait_phase("walk", "Starting", ns)
    deployment = cluster.kube.get("apps/v1", "Deployment", "walk", ns)
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == uid
    assert cluster.condition("walk", "Downloaded", ns)["status"] == "True"

    sim.set_pod_mode("walk", "ready", namespace=ns)
    status = cluster.wait_phase("walk", "Ready", ns)
    assert status["readyReplicas"] == 1
    assert status["endpoint"] == f"http://llmserver-gateway.{ns}.svc/v1"
    [endpoint_slice] = cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", ns, labels="kubernetes.io/service-name=walk")
    assert endpoint_slice["endpoints"][0]["conditions"]["ready"] is True
    assert cluster.condition("walk", "Ready", ns)["status"] == "True"


def test_failed_download_shows_the_termination_message(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("fail", "RepositoryNotFoundError: 404 acme/missing", exit_code=3, name_prefix="gone-")
    cluster.apply_server("gone", ns, **gguf("acme/missing"))
    cluster.wait_phase("gone", "Failed", ns)
    downloaded = cluster.condition("gone", "Downloaded", ns)
    assert (downloaded["status"], downloaded["reason"]) == ("False", "DownloadFailed")
    assert downloaded["message"] == "download failed (exit code 3): RepositoryNotFoundError: 404 acme/missing"
    assert cluster.condition("gone", "Degraded", ns)["status"] == "True"
    assert names(cluster, "apps/v1", "Deployment", ns) == []


def test_crash_loop_and_unschedulable_pods_are_reported(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_pod_mode("crash", "crashloop", "RuntimeError: model file is corrupt", namespace=ns)
    cluster.apply_server("crash", ns, **gguf(model="crash"))
    cluster.wait_phase("crash", "Failed", ns)
    degraded = cluster.condition("crash", "Degraded", ns)
    assert degraded["reason"] == "CrashLoopBackOff" and "model file is corrupt" in degraded["message"]

    cluster.kubelet.set_pod_mode("crash", "unschedulable", "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.", namespace=ns)
    cluster.wait_phase("crash", "Pending", ns)
    progressing = cluster.condition("crash", "Progressing", ns)
    assert progressing["reason"] == "Unschedulable" and "Insufficient nvidia.com/gpu" in progressing["message"]

    cluster.kubelet.set_pod_mode("crash", "ready", namespace=ns)
    cluster.wait_phase("crash", "Ready", ns)
    assert cluster.condition("crash", "Degraded", ns)["status"] == "False"


def template_hash(cluster: Cluster, ns: str, name: str) -> str:
    deployment = cluster.kube.get("apps/v1", "Deployment", name, ns)
    return deployment["spec"]["template"]["metadata"]["annotations"]["serving.llmserver.dev/pod-template-hash"]


def test_replicas_scale_without_a_rollout_and_config_changes_roll_out(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("upd", ns, **gguf())
    cluster.wait_phase("upd", "Ready", ns)
    first_hash = template_hash(cluster, ns, "upd")
    first_pods = {p["metadata"]["name"] for p in pods(cluster, ns, "upd")}

    cluster.apply_server("upd", ns, **gguf(replicas=3))
    cluster.kube.wait_for(lambda: cluster.status("upd", ns).get("readyReplicas") == 3, 30)
    assert template_hash(cluster, ns, "upd") == first_hash
    assert first_pods <= {p["metadata"]["name"] for p in pods(cluster, ns, "upd")}  # the old pod kept serving

    cluster.apply_server("upd", ns, **gguf(replicas=3, llamaCpp={"nCtx": 1024}))
    cluster.kube.wait_for(lambda: template_hash(cluster, ns, "upd") != first_hash, 30)
    deployment = cluster.kube.get("apps/v1", "Deployment", "upd", ns)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--n-ctx", "1024"]
    cluster.kube.wait_for(lambda: not first_pods & {p["metadata"]["name"] for p in pods(cluster, ns, "upd")}, 30)
    status = cluster.wait_phase("upd", "Ready", ns)
    assert status["readyReplicas"] == 3

    cluster.apply_server("upd", ns, **gguf(replicas=0, llamaCpp={"nCtx": 1024}))
    cluster.wait_phase("upd", "Unloaded", ns)
    assert cluster.kube.get("apps/v1", "Deployment", "upd", ns)["spec"]["replicas"] == 0


def test_a_new_source_downloads_then_rolls_out(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.apply_server("src", ns, **gguf("acme/first"))
    cluster.wait_phase("src", "Ready", ns)
    [old_job] = names(cluster, "batch/v1", "Job", ns)
    old_args = cluster.kube.get("apps/v1", "Deployment", "src", ns)["spec"]["template"]["spec"]["containers"][0]["args"]

    cluster.kubelet.set_job_outcome("hold", name_prefix="src-")
    cluster.apply_server("src", ns, **gguf("acme/second"))
    cluster.wait_phase("src", "Downloading", ns)
    [new_job] = names(cluster, "batch/v1", "Job", ns)
    assert new_job != old_job  # the old source's Job was removed
    # the old model keeps serving until the new one is in the cache
    assert cluster.kube.get("apps/v1", "Deployment", "src", ns)["spec"]["template"]["spec"]["containers"][0]["args"] == old_args
    assert cluster.condition("src", "Ready", ns)["status"] == "True"

    cluster.kubelet.finish_job(ns, new_job, "succeed")
    cluster.kube.wait_for(lambda: "/models/hf/acme/second/main/m.gguf" in cluster.kube.get(
        "apps/v1", "Deployment", "src", ns)["spec"]["template"]["spec"]["containers"][0]["args"], 30)
    cluster.wait_phase("src", "Ready", ns)


def test_delete_collects_children_and_keeps_a_shared_cache(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("keep", ns, **gguf())
    cluster.apply_server("drop", ns, **gguf("acme/other", cache={"claimName": "drop-cache", "deleteOnServerDelete": True}))
    cluster.wait_phase("keep", "Ready", ns)
    cluster.wait_phase("drop", "Ready", ns)
    for name in ("keep", "drop"):
        cluster.kube.delete(LLMS, "LLMServer", name, ns)
    cluster.kube.wait_for(lambda: not cluster.kube.list("apps/v1", "Deployment", ns), 30)
    cluster.kube.gc.idle()  # garbage collection is asynchronous: the Deployments' pods go in a later pass
    for api_version, kind in (("batch/v1", "Job"), ("v1", "Service"), ("v1", "ServiceAccount"),
                              ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding")):
        assert names(cluster, api_version, kind, ns) == [], kind
    assert names(cluster, "v1", "PersistentVolumeClaim", ns, labels=None) == ["llmserver-model-cache"]
    assert pods(cluster, ns, "keep") == []


def test_invalid_spec_is_reported_not_crash_looped(cluster: Cluster, ns: str) -> None:
    # the emulator does not enforce the CRD schema, so this reaches the operator as it could via an old CRD
    cluster.apply_server("bad", ns, model="bad", backend="llama-cpp", replicas=-2,
                         source={"huggingFace": {"repo": "acme/tiny"}})
    status = cluster.wait_phase("bad", "Failed", ns)
    assert "spec.replicas" in status["message"]
    assert cluster.condition("bad", "Ready", ns)["reason"] == "InvalidSpec"
    assert names(cluster, "batch/v1", "Job", ns) == []
    cluster.apply_server("bad", ns, **gguf())  # fixing the spec recovers
    cluster.wait_phase("bad", "Ready", ns)


def test_pvc_source_waits_for_its_claim_and_downloads_nothing(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("onpvc", ns, model="tiny", backend="llama-cpp", source={"pvc": {"claimName": "models", "path": "t.gguf"}})
    cluster.wait_phase("onpvc", "Pending", ns)
    assert cluster.condition("onpvc", "Downloaded", ns)["reason"] == "ClaimNotFound"
    cluster.kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models", "namespace": ns},
                         "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    cluster.wait_phase("onpvc", "Ready", ns)
    assert names(cluster, "batch/v1", "Job", ns) == []
    args = cluster.kube.get("apps/v1", "Deployment", "onpvc", ns)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/models/t.gguf"


def test_proxy_needs_only_its_secret(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("prox", ns, model="gpt-4o-mini", mode="Proxy",
                         proxy={"url": "https://api.example/v1", "apiKeySecretRef": {"name": "provider", "key": "apiKey"}})
    cluster.wait_phase("prox", "Pending", ns)
    assert cluster.condition("prox", "Ready", ns)["reason"] == "SecretNotFound"
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "provider", "namespace": ns, "labels": {"serving.llmserver.dev/proxy-key": "true"}},
        "data": {"apiKey": "c2stdGVzdA=="}})
    status = cluster.wait_phase("prox", "Ready", ns)  # the operator retried on its own
    assert status["endpoint"] == f"http://llmserver-gateway.{ns}.svc/v1"
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service"), ("batch/v1", "Job")):
        assert names(cluster, api_version, kind, ns) == []


def test_switching_to_proxy_removes_the_workload(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("switch", ns, **gguf())
    cluster.wait_phase("switch", "Ready", ns)
    cluster.apply_server("switch", ns, model="tiny", mode="Proxy", proxy={"url": "https://api.example/v1"})
    cluster.wait_phase("switch", "Ready", ns)
    cluster.kube.wait_for(lambda: not cluster.kube.list("apps/v1", "Deployment", ns), 30)
    for api_version, kind in (("v1", "Service"), ("batch/v1", "Job"), ("v1", "ServiceAccount")):
        assert names(cluster, api_version, kind, ns) == []


def test_mlx_waits_for_an_apple_node_without_kubernetes_workloads(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("mac", ns, model="tiny", backend="mlx", source={"huggingFace": {"repo": "mlx-community/tiny"}})
    status = cluster.wait_phase("mac", "Pending", ns)
    assert cluster.condition("mac", "Ready", ns)["reason"] == "WaitingForAppleNode"
    assert "AppleNode" in status["message"]
    assert names(cluster, "apps/v1", "Deployment", ns) == [] and names(cluster, "batch/v1", "Job", ns) == []


def test_the_token_never_leaves_its_secret(cluster: Cluster, ns: str) -> None:
    token = "hf_VerySecretToken123"
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": ns},
                         "stringData": {"token": token}})
    cluster.apply_server("gated", ns, model="tiny", backend="llama-cpp",
                         source={"huggingFace": {"repo": "acme/gated", "tokenSecretRef": {"name": "hf", "key": "token"}}})
    cluster.wait_phase("gated", "Ready", ns)
    [job] = cluster.kube.list("batch/v1", "Job", ns)
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": "token", "name": "hf", "optional": False}}} in env
    for resource in cluster.kube.store.resources.values():
        for obj in cluster.kube.store.list(resource, ns)[0]:
            if obj["kind"] != "Secret":
                assert token not in repr(obj), f"{obj['kind']} {obj['metadata']['name']} carries the token"
