"""The real operator against an API server that fails, throttles, holds names and refuses objects:
every reconcile path retries with backoff, and what persists reaches status as a condition."""

from __future__ import annotations

from typing import Any

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
LLMS = fake_cluster.LLMS


def gguf(model: str, repo: str = "acme/tiny-gguf") -> dict[str, Any]:
    """A model name of its own: servers sharing one are a ModelNameConflict."""
    return {"model": model, "backend": "llama-cpp", "source": {"huggingFace": {"repo": repo, "file": "m.gguf"}}}


def test_a_500_right_after_the_job_completes_is_retried(cluster: Cluster, ns: str) -> None:
    """The pass started by the Job's completion event fails; kopf would never run it again."""
    assert cluster.kubelet is not None
    cluster.kubelet.set_job_outcome("hold", name_prefix="after500-")
    cluster.apply_server("after500", ns, **gguf("after500"))
    cluster.wait_phase("after500", "Downloading", ns)
    [job] = cluster.kube.list("batch/v1", "Job", ns)
    # the pass reads the Job from the watch cache; its first call is the Deployment's create
    fault = cluster.kube.faults.add(verb="create", kind="Deployment", namespace=ns, status=500, times=2)
    cluster.kubelet.finish_job(ns, job["metadata"]["name"], "succeed")
    cluster.wait_phase("after500", "Ready", ns)
    assert fault.hits == 2


def test_throttled_and_failing_writes_are_retried(cluster: Cluster, ns: str) -> None:
    throttled = cluster.kube.faults.add(verb="create", kind="Deployment", namespace=ns, status=429, retry_after=0.2, times=2)
    failing = cluster.kube.faults.add(verb="patch", kind="LLMServer", namespace=ns, subresource="status", status=500, times=2)
    cluster.apply_server("busy", ns, **gguf("busy"))
    cluster.wait_phase("busy", "Ready", ns)
    assert (throttled.hits, failing.hits) == (2, 2)


def test_slow_answers_are_waited_for(cluster: Cluster, ns: str) -> None:
    slow = cluster.kube.faults.add(verb="create", namespace=ns, delay=0.5, times=3)  # reads come from the watch cache
    cluster.apply_server("slow", ns, **gguf("slow"))
    cluster.wait_phase("slow", "Ready", ns)
    assert slow.hits == 3


def test_a_foreign_object_with_the_childs_name_is_a_condition_until_it_goes(cluster: Cluster, ns: str) -> None:
    cluster.kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken", "namespace": ns},
                         "spec": {"ports": [{"port": 80}], "selector": {"app": "someone-else"}}})
    cluster.apply_server("taken", ns, **gguf("taken"))
    status = cluster.wait_phase("taken", "Failed", ns)
    ready = cluster.condition("taken", "Ready", ns)
    assert (ready["status"], ready["reason"]) == ("False", "ChildConflict")
    assert "Service 'taken'" in ready["message"] and "not managed by llmserver-operator" in ready["message"]
    assert cluster.condition("taken", "Degraded", ns)["reason"] == "ChildConflict"
    assert status["message"] == ready["message"]
    foreign = cluster.kube.get("v1", "Service", "taken", ns)
    assert foreign["spec"]["selector"] == {"app": "someone-else"}  # never taken over

    cluster.kube.delete("v1", "Service", "taken", ns)  # not ours, not watched: found by the retries
    cluster.wait_phase("taken", "Ready", ns)
    assert cluster.kube.get("v1", "Service", "taken", ns)["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llmserver-operator"


def test_a_child_the_api_server_refuses_is_a_condition_with_its_message(cluster: Cluster, ns: str) -> None:
    refused = cluster.kube.faults.add(verb="create", kind="Job", namespace=ns, status=422,
                                      message='Job.batch "x" is invalid: spec.template.spec.volumes[0]: Invalid value')
    cluster.apply_server("refused", ns, **gguf("refused"))
    cluster.wait_phase("refused", "Failed", ns)
    ready = cluster.condition("refused", "Ready", ns)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidChild")
    assert ready["message"].startswith("the API server refused Job 'refused-download-")
    assert "spec.template.spec.volumes[0]: Invalid value" in ready["message"]
    cluster.kube.faults.remove(refused)  # e.g. an admission policy fixed: the retries find it
    cluster.wait_phase("refused", "Ready", ns)


def test_a_name_too_long_for_its_children_is_an_invalid_spec(cluster: Cluster, ns: str) -> None:
    """As an older CRD (without the name-fits-children rule) let it in: no child is attempted."""
    name = "a" * 46
    cluster.apply_server(name, ns, **gguf("long"))
    status = cluster.wait_phase(name, "Failed", ns)
    assert cluster.condition(name, "Ready", ns)["reason"] == "InvalidSpec"
    assert "at most 45 characters" in status["message"]
    assert cluster.kube.list("batch/v1", "Job", ns) == []
