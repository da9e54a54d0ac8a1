"""The API emulator behaves like the API server where kopf, the client and kubectl depend on it."""

from __future__ import annotations

import json
import pathlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from testkit import emulator

pytestmark = pytest.mark.timeout(120)

LLMS = "serving.llmserver.dev/v1alpha1"


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def call(kube: emulator.KubeEmulator, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(kube.url + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"a": "1"}}


def test_create_stamps_server_fields_and_generate_name(kube: emulator.KubeEmulator) -> None:
    code, created = call(kube, "POST", "/api/v1/namespaces/em1/configmaps", configmap("", generateName="cm-"))
    assert code == 201
    meta = created["metadata"]
    assert meta["name"].startswith("cm-") and len(meta["name"]) == 8
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    code, conflict = call(kube, "POST", "/api/v1/namespaces/em1/configmaps", configmap(meta["name"]))
    assert (code, conflict["reason"]) == (409, "AlreadyExists")
    assert kube.get("v1", "Namespace", "em1", None) is not None  # created on first use


def test_generation_moves_with_spec_not_status(kube: emulator.KubeEmulator) -> None:
    created = kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "gen", "namespace": "em2"},
                           "spec": {"model": "m", "source": {"pvc": {"claimName": "c"}}}, "status": {"phase": "Ready"}})
    assert "status" not in created  # status subresource: ignored on create
    assert created["spec"]["mode"] == "SelfHosted"  # CRD defaults applied like the API server does
    code, patched = call(kube, "PATCH", "/apis/serving.llmserver.dev/v1alpha1/namespaces/em2/llmservers/gen/status",
                         {"status": {"phase": "Ready"}, "spec": {"model": "ignored"}}, "application/merge-patch+json")
    assert code == 200
    assert patched["status"]["phase"] == "Ready" and patched["spec"]["model"] == "m"
    assert patched["metadata"]["generation"] == 1
    code, patched = call(kube, "PATCH", "/apis/serving.llmserver.dev/v1alpha1/namespaces/em2/llmservers/gen",
                         {"spec": {"replicas": 2}, "status": {"phase": "ignored"}}, "application/merge-patch+json")
    assert patched["metadata"]["generation"] == 2 and patched["status"]["phase"] == "Ready"
    rv = patched["metadata"]["resourceVersion"]
    code, same = call(kube, "PATCH", "/apis/serving.llmserver.dev/v1alpha1/namespaces/em2/llmservers/gen",
                      {"spec": {"replicas": 2}}, "application/merge-patch+json")
    assert same["metadata"]["resourceVersion"] == rv  # a no-op write changes nothing


def test_json_patch_test_failure_is_422_and_applies_nothing(kube: emulator.KubeEmulator) -> None:
    created = kube.create(configmap("jp", namespace="em3"))
    path = "/api/v1/namespaces/em3/configmaps/jp"
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}, {"op": "add", "path": "/data/b", "value": "2"}]
    code, body = call(kube, "PATCH", path, ops, "application/json-patch+json")
    assert code == 422 and body["kind"] == "Status"
    assert kube.get("v1", "ConfigMap", "jp", "em3")["data"] == {"a": "1"}
    ops[0]["value"] = created["metadata"]["resourceVersion"]
    code, body = call(kube, "PATCH", path, ops, "application/json-patch+json")
    assert code == 200 and body["data"] == {"a": "1", "b": "2"}


def test_put_is_guarded_by_resource_version(kube: emulator.KubeEmulator) -> None:
    created = kube.create(configmap("put", namespace="em4"))
    stale = {**created, "data": {"a": "2"}}
    code, _ = call(kube, "PUT", "/api/v1/namespaces/em4/configmaps/put", stale)
    assert code == 200
    code, body = call(kube, "PUT", "/api/v1/namespaces/em4/configmaps/put", stale)
    assert (code, body["reason"]) == (409, "Conflict")


def test_lists_filter_by_labels_and_fields(kube: emulator.KubeEmulator) -> None:
    for name, tier in (("l1", "web"), ("l2", "db"), ("l3", None)):
        kube.create(configmap(name, namespace="em5", labels={"tier": tier} if tier else {}))

    def names(query: str) -> list[str]:
        code, body = call(kube, "GET", f"/api/v1/namespaces/em5/configmaps?{query}")
        assert code == 200 and body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
        return [item["metadata"]["name"] for item in body["items"]]

    assert names("labelSelector=tier%3Dweb") == ["l1"]
    assert names("labelSelector=tier%21%3Dweb") == ["l2", "l3"]
    assert names("labelSelector=tier%20in%20(web,db)") == ["l1", "l2"]
    assert names("labelSelector=tier") == ["l1", "l2"]
    assert names("labelSelector=%21tier") == ["l3"]
    assert names("fieldSelector=metadata.name%3Dl2") == ["l2"]


def stream(kube: emulator.KubeEmulator, path: str, count: int) -> list[dict[str, Any]]:
    """Reads `count` watch events (a bounded read: the stream itself never ends)."""
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(kube.url + path, timeout=10) as response:
        while len(events) < count:
            events.append(json.loads(response.readline()))
    return events


def test_watch_resumes_from_a_resource_version_without_losing_events(kube: emulator.KubeEmulator) -> None:
    _, listing = call(kube, "GET", "/api/v1/namespaces/em6/configmaps")
    since = listing["metadata"]["resourceVersion"]
    kube.create(configmap("w1", namespace="em6"))
    kube.patch("v1", "ConfigMap", "w1", {"data": {"a": "2"}}, "em6")
    kube.delete("v1", "ConfigMap", "w1", "em6")
    events = stream(kube, f"/api/v1/namespaces/em6/configmaps?watch=true&resourceVersion={since}", 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    live: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: live.extend(stream(
        kube, f"/api/v1/namespaces/em6/configmaps?watch=true&resourceVersion={events[-1]['object']['metadata']['resourceVersion']}", 1)))
    reader.start()
    kube.create(configmap("w2", namespace="em6"))
    reader.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in live] == [("ADDED", "w2")]


def test_watch_from_a_compacted_version_is_410_gone() -> None:
    with emulator.KubeEmulator(log_size=2) as small:
        for index in range(5):
            small.create(configmap(f"g{index}", namespace="default"))
        events = stream(small, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1", 1)
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


def test_owner_references_are_garbage_collected(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("owner", namespace="em7"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kube.create(configmap("child", namespace="em7", ownerReferences=[ref]))
    grandchild_ref = {**ref, "name": "child", "uid": kube.get("v1", "ConfigMap", "child", "em7")["metadata"]["uid"]}
    kube.create(configmap("grandchild", namespace="em7", ownerReferences=[grandchild_ref]))
    kube.create(configmap("orphan-me", namespace="em7", ownerReferences=[ref]))
    kube.create(configmap("free", namespace="em7"))
    code, _ = call(kube, "DELETE", "/api/v1/namespaces/em7/configmaps/owner", {"propagationPolicy": "Background"})
    assert code == 200
    kube.gc.idle()  # garbage collection is asynchronous, as on a real cluster
    assert [c["metadata"]["name"] for c in kube.list("v1", "ConfigMap", "em7")] == ["free"]


def test_orphan_propagation_keeps_dependents(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("o2", namespace="em8"))
    kube.create(configmap("dep", namespace="em8", ownerReferences=[
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o2", "uid": owner["metadata"]["uid"]}]))
    kube.delete("v1", "ConfigMap", "o2", "em8", propagation="Orphan")
    kube.gc.idle()
    assert kube.get("v1", "ConfigMap", "o2", "em8") is None
    assert kube.get("v1", "ConfigMap", "dep", "em8")["metadata"]["ownerReferences"] == []


def test_finalizers_hold_deletion_until_removed(kube: emulator.KubeEmulator) -> None:
    kube.create(configmap("fin", namespace="em9", finalizers=["example.com/hold"]))
    kube.delete("v1", "ConfigMap", "fin", "em9")
    held = kube.get("v1", "ConfigMap", "fin", "em9")
    assert held["metadata"]["deletionTimestamp"]
    kube.patch("v1", "ConfigMap", "fin", {"metadata": {"finalizers": None}}, "em9")
    assert kube.get("v1", "ConfigMap", "fin", "em9") is None


def test_kubectl_shows_the_llmserver_printer_columns(kube: emulator.KubeEmulator) -> None:
    kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "cols", "namespace": "em10"},
                 "spec": {"model": "tiny-chat", "backend": "llama-cpp", "source": {"pvc": {"claimName": "c"}}}})
    kube.patch(LLMS, "LLMServer", "cols", {"status": {"phase": "Ready", "readyReplicas": 2}}, "em10", subresource="status")
    out = kube.kubectl("get", "llms", "-n", "em10").stdout.splitlines()
    assert out[0].split() == ["NAME", "MODE", "BACKEND", "MODEL", "PHASE", "READY", "AGE"]
    row = out[1].split()
    assert row[:6] == ["cols", "SelfHosted", "llama-cpp", "tiny-chat", "Ready", "2"]
    assert row[6].endswith(("s", "m"))  # an age, not a timestamp
    as_json = json.loads(kube.kubectl("get", "llmservers", "cols", "-n", "em10", "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Ready"


def test_kubectl_apply_scale_and_delete_work(kube: emulator.KubeEmulator, tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all([
        {"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "applied", "namespace": "em11"},
         "spec": {"model": "m", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "a/b"}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "em11"},
         "spec": {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    ]))
    assert "created" in kube.kubectl("apply", "--validate=false", "-f", str(manifest)).stdout
    assert kube.kubectl("apply", "--validate=false", "-f", str(manifest)).stdout.count("unchanged") == 2
    kube.kubectl("scale", "deployment/web", "-n", "em11", "--replicas=3")
    assert kube.get("apps/v1", "Deployment", "web", "em11")["spec"]["replicas"] == 3
    kube.kubectl("patch", "llms", "applied", "-n", "em11", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    kube.kubectl("wait", "--for=jsonpath={.spec.replicas}=2", "llms/applied", "-n", "em11", "--timeout=10s")
    kube.kubectl("delete", "-f", str(manifest))
    assert kube.list(LLMS, "LLMServer", "em11") == [] and kube.list("apps/v1", "Deployment", "em11") == []
