"""The real operator picks a runtime image flavour per LLMServer, and refuses (no pods) what none fits."""

from __future__ import annotations

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
LLMS = fake_cluster.LLMS
OURS = "app.kubernetes.io/managed-by=llmserver-operator"


def test_no_flavour_fits_fails_with_no_runtime_image_and_creates_nothing(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("vllm-cpu", ns, model="q", backend="vllm", source={"huggingFace": {"repo": "Qwen/Q"}})
    status = cluster.wait_phase("vllm-cpu", "Failed", ns)
    ready = cluster.condition("vllm-cpu", "Ready", ns)
    assert (ready["status"], ready["reason"]) == ("False", "NoRuntimeImage")
    assert "vllm engine for CPU" in ready["message"] and "runtime.images" in ready["message"]
    assert status["resolved"]["imageReason"] == ready["message"] and "image" not in status["resolved"]
    for api_version, kind in (("batch/v1", "Job"), ("apps/v1", "Deployment"), ("v1", "Pod")):
        assert cluster.kube.list(api_version, kind, ns, labels=OURS) == [], kind

    # the user gives the server GPUs: the cuda flavour fits, and the download starts
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("hold", name_prefix="vllm-cpu-")
    cluster.apply_server("vllm-cpu", ns, model="q", backend="vllm", source={"huggingFace": {"repo": "Qwen/Q"}},
                         resources={"gpus": 1})
    status = cluster.wait_phase("vllm-cpu", "Downloading", ns)
    assert status["resolved"]["flavour"] == "cuda"
    assert status["resolved"]["image"] == "ghcr.io/llmserver/llmserver-runtime-cuda:0.1.0"
    [job] = cluster.kube.list("batch/v1", "Job", ns, labels=OURS)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/llmserver/llmserver-operator:0.1.0"


def test_the_chosen_image_runs_the_pods_and_shows_in_status(cluster: Cluster, ns: str) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_pod_mode("pinned", "ready", namespace=ns)
    pinned = "registry.example/mine@sha256:" + "b" * 64
    cluster.apply_server("pinned", ns, model="tiny", backend="llama-cpp", image=pinned,
                         source={"huggingFace": {"repo": "acme/tiny-gguf", "file": "m.gguf"}})
    status = cluster.wait_phase("pinned", "Ready", ns)
    deployment = cluster.kube.get("apps/v1", "Deployment", "pinned", ns)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert status["resolved"]["image"] == pinned and "flavour" not in status["resolved"]
    assert status["resolved"]["backend"] == "llama-cpp"
    assert status["resolved"]["imageReason"] == "spec.image overrides the runtime image catalog"
