"""Operator restarts: an interrupted reconcile resumes without duplicates; a resync of a settled
cluster writes nothing; everything the operator wrote is valid for the API server."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from llmserver_operator import kube as kube_mod
from llmserver_operator import reconciler as reconciler_mod
from testkit import crd_validation, fake_cluster

pytestmark = pytest.mark.timeout(180)

LLMS = fake_cluster.LLMS
WORKLOAD_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("batch/v1", "Job"), ("v1", "ServiceAccount"),
                  ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                  ("v1", "PersistentVolumeClaim"))


@pytest.fixture
def cluster() -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster() as running:
        yield running


def gguf(repo: str) -> dict[str, Any]:
    return {"model": repo.split("/")[1], "backend": "llama-cpp", "source": {"huggingFace": {"repo": repo, "file": "m.gguf"}}}


def test_interrupted_reconcile_resumes_without_duplicates(cluster: fake_cluster.FakeCluster) -> None:
    assert cluster.operator is not None and cluster.operator.memo is not None
    client = cluster.operator.memo.reconciler.kube
    original = client.create
    refused = threading.Event()

    def create(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Deployment":  # the operator "dies" right before its Deployment exists
            refused.set()
            raise kube_mod.ApiError(500, "injected failure")
        return original(obj)

    client.create = create  # type: ignore[method-assign]
    cluster.apply_server("resume", "r1", **gguf("acme/resume"))
    cluster.kube.wait_for(refused.is_set, 30)
    cluster.stop_operator()
    half_done = {kind: [o["metadata"]["name"] for o in cluster.kube.list(v, kind, "r1")] for v, kind in WORKLOAD_KINDS}
    assert half_done["Deployment"] == [] and len(half_done["Job"]) == 1

    cluster.start_operator()
    status = cluster.wait_phase("resume", "Ready", "r1")
    assert status["readyReplicas"] == 1
    for api_version, kind in WORKLOAD_KINDS:
        objects = cluster.kube.list(api_version, kind, "r1")
        assert len(objects) == 1, f"{kind}: {[o['metadata']['name'] for o in objects]}"
    assert [o["metadata"]["name"] for o in cluster.kube.list("batch/v1", "Job", "r1")] == half_done["Job"]


def test_resync_with_nothing_changed_writes_nothing(cluster: fake_cluster.FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("fail", "HTTP 401", name_prefix="denied-")
    servers = {
        "served": ("Ready", gguf("acme/served")),
        "denied": ("Failed", gguf("acme/denied")),
        "proxied": ("Ready", {"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}}),
        "onmac": ("Pending", {"model": "m", "backend": "mlx", "source": {"huggingFace": {"repo": "mlx-community/m"}}}),
    }
    for name, (_, spec) in servers.items():
        cluster.apply_server(name, "quiet", **spec)
    for name, (phase, _) in servers.items():
        cluster.wait_phase(name, phase, "quiet")
    cluster.kubelet.idle()
    cluster.stop_operator()

    done: collections.Counter[str] = collections.Counter()
    real = reconciler_mod.Reconciler.reconcile

    def counted(self: reconciler_mod.Reconciler, namespace: str, name: str) -> reconciler_mod.Outcome:
        outcome = real(self, namespace, name)
        done[name] += 1
        return outcome

    monkeypatch.setattr(reconciler_mod.Reconciler, "reconcile", counted)
    before = len(cluster.kube.requests)
    cluster.start_operator()
    cluster.kube.wait_for(lambda: all(done[name] for name in servers), 30, "every server resumed")
    cluster.kubelet.idle()
    assert cluster.kube.writes(before) == []
    assert any(r.method == "GET" for r in cluster.kube.requests[before:])  # it did look


def test_every_object_the_operator_writes_is_valid(cluster: fake_cluster.FakeCluster) -> None:
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": "valid"},
                         "stringData": {"token": "t"}})
    specs = {
        "llama": {**gguf("acme/llama"), "resources": {"gpus": 1, "cpu": "2", "memory": "4Gi", "nodeSelector": {"pool": "gpu"},
                                                      "tolerations": [{"key": "gpu", "operator": "Exists"}]}},
        "vllm": {"model": "v", "backend": "vllm", "resources": {"gpus": 2},
                 "source": {"huggingFace": {"repo": "acme/v", "tokenSecretRef": {"name": "hf", "key": "token"}}},
                 "cache": {"claimName": "vllm-cache", "size": "20Gi", "deleteOnServerDelete": True}},
        "hf": {"model": "h", "backend": "transformers", "transformers": {"loadIn8bit": True},
               "source": {"huggingFace": {"repo": "acme/h"}}, "capabilities": ["Embeddings"]},
        "proxy": {"model": "p", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}},
        "broken": {"model": "b", "replicas": -1, "source": {"pvc": {"claimName": "x"}}},
    }
    for name, spec in specs.items():
        cluster.apply_server(name, "valid", **spec)
    for name in ("llama", "vllm", "hf", "proxy"):
        cluster.wait_phase(name, "Ready", "valid")
    cluster.wait_phase("broken", "Failed", "valid")

    checked = 0
    for api_version, kind in WORKLOAD_KINDS:
        for obj in cluster.kube.list(api_version, kind, "valid"):
            obj.pop("status", None)  # written by the kubelet simulator, not the operator
            kubernetes_validate.validate(obj, "1.32", strict=True)
            checked += 1
    assert checked >= 3 * 7 - 2  # three workloads, two sharing the default cache claim
    crds = crd_validation.load_crds()
    for name in specs:
        server = cluster.server(name, "valid")
        assert server is not None
        problems = crd_validation.schema_problems(crd_validation.open_api_schema(crds["LLMServer"]),
                                                  {"apiVersion": LLMS, "kind": "LLMServer", "status": server["status"],
                                                   "spec": specs["proxy"], "metadata": {"name": name}})
        assert problems == [], (name, problems)
