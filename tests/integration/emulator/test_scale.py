"""The /scale subresource of the API emulator: CRD paths, kubectl scale's calls, an HPA's PUT."""

from __future__ import annotations

import pytest
from testkit import emulator, emulator_client

pytestmark = pytest.mark.timeout(60)

LLMS = "serving.llmserver.dev/v1alpha1"
BASE = "/apis/serving.llmserver.dev/v1alpha1/namespaces/sc/llmservers"
SELECTOR = "app.kubernetes.io/component=runtime,app.kubernetes.io/instance=chat,serving.llmserver.dev/server=chat"


def _server(kube: emulator.KubeEmulator, name: str) -> dict:
    return kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": name, "namespace": "sc"},
                        "spec": {"model": name, "backend": "llama-cpp", "source": {"huggingFace": {"repo": "a/b"}}}})


def test_get_reads_the_paths_the_crd_declares(kube: emulator.KubeEmulator) -> None:
    _server(kube, "chat")
    answer = emulator_client.call(kube, "GET", f"{BASE}/chat/scale")
    assert answer.code == 200
    assert (answer.body["apiVersion"], answer.body["kind"]) == ("autoscaling/v1", "Scale")
    assert answer.body["spec"] == {"replicas": 1}  # the schema default
    assert answer.body["status"] == {"replicas": 0, "selector": ""}  # nothing observed yet
    kube.patch(LLMS, "LLMServer", "chat", {"status": {"replicas": 2, "selector": SELECTOR}}, "sc", subresource="status")
    assert emulator_client.call(kube, "GET", f"{BASE}/chat/scale").body["status"] == {"replicas": 2, "selector": SELECTOR}


def test_patch_and_put_write_spec_replicas_and_bump_the_generation(kube: emulator.KubeEmulator) -> None:
    before = _server(kube, "writes")
    patched = emulator_client.call(kube, "PATCH", f"{BASE}/writes/scale", {"spec": {"replicas": 3}},
                                   "application/merge-patch+json")
    assert patched.code == 200 and patched.body["spec"]["replicas"] == 3
    after = kube.get(LLMS, "LLMServer", "writes", "sc")
    assert after["spec"]["replicas"] == 3 and after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["spec"]["model"] == "writes"  # nothing else of the object changed
    scale = emulator_client.call(kube, "GET", f"{BASE}/writes/scale").body
    put = emulator_client.call(kube, "PUT", f"{BASE}/writes/scale", {**scale, "spec": {"replicas": 0}})
    assert put.code == 200 and kube.get(LLMS, "LLMServer", "writes", "sc")["spec"]["replicas"] == 0
    stale = emulator_client.call(kube, "PUT", f"{BASE}/writes/scale", {**scale, "spec": {"replicas": 5}})
    assert stale.code == 409  # the HPA's resourceVersion is old: it must read again
    negative = emulator_client.call(kube, "PATCH", f"{BASE}/writes/scale", {"spec": {"replicas": -1}},
                                    "application/merge-patch+json")
    assert negative.code == 422 and kube.get(LLMS, "LLMServer", "writes", "sc")["spec"]["replicas"] == 0


def test_applenodes_have_no_scale_and_discovery_names_the_scale_kind(kube: emulator.KubeEmulator) -> None:
    assert emulator_client.call(kube, "GET", "/apis/serving.llmserver.dev/v1alpha1/applenodes/mac/scale").code == 404
    resources = emulator_client.call(kube, "GET", "/apis/serving.llmserver.dev/v1alpha1").body["resources"]
    [scale] = [r for r in resources if r["name"] == "llmservers/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_kubectl_scale_works_on_llmservers_and_deployments(kube: emulator.KubeEmulator) -> None:
    _server(kube, "cli")
    since = len(kube.requests)
    kube.kubectl("scale", "llms/cli", "-n", "sc", "--replicas=4")
    assert kube.get(LLMS, "LLMServer", "cli", "sc")["spec"]["replicas"] == 4
    assert kube.calls(since, agent="kubectl")[("patch", "LLMServer/scale")] == 1  # a merge patch of spec.replicas
    since = len(kube.requests)
    kube.kubectl("scale", "llms/cli", "-n", "sc", "--replicas=2", "--current-replicas=4")  # reads, then PUTs the Scale
    assert kube.get(LLMS, "LLMServer", "cli", "sc")["spec"]["replicas"] == 2
    assert {("get", "LLMServer/scale"), ("update", "LLMServer/scale")} <= set(kube.calls(since, agent="kubectl"))
    refused = kube.kubectl("scale", "llms/cli", "-n", "sc", "--replicas=3", "--current-replicas=9", check=False)
    assert refused.returncode != 0 and kube.get(LLMS, "LLMServer", "cli", "sc")["spec"]["replicas"] == 2
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "sc"},
                 "spec": {"selector": {"matchLabels": {"app": "web"}},
                          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    kube.kubectl("scale", "deployment/web", "-n", "sc", "--replicas=2")
    scale = emulator_client.call(kube, "GET", "/apis/apps/v1/namespaces/sc/deployments/web/scale").body
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=web"
