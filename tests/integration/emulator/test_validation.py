"""Names, labels and unknown fields are handled as the API server handles them."""

from __future__ import annotations

import pytest
from testkit import emulator
from testkit.emulator_client import call, configmap

pytestmark = pytest.mark.timeout(60)
LLMS = "/apis/serving.llmserver.dev/v1alpha1/namespaces/{ns}/llmservers"


def service(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def job(name: str) -> dict[str, object]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}


@pytest.mark.parametrize(("path", "body", "accepted"), [
    ("/api/v1/namespaces/v1/configmaps", configmap("a" * 253), True),
    ("/api/v1/namespaces/v1/configmaps", configmap("a" * 254), False),
    ("/api/v1/namespaces/v1/configmaps", configmap("dots.are-fine"), True),
    ("/api/v1/namespaces/v1/configmaps", configmap("Upper"), False),
    ("/api/v1/namespaces/v1/services", service("s" * 63), True),
    ("/api/v1/namespaces/v1/services", service("s" * 64), False),
    ("/api/v1/namespaces/v1/services", service("1-starts-with-a-digit"), False),
    ("/api/v1/namespaces/v1/services", service("has.dot"), False),
    ("/apis/batch/v1/namespaces/v1/jobs", job("j" * 63), True),
    ("/apis/batch/v1/namespaces/v1/jobs", job("j" * 64), False),
    ("/api/v1/namespaces", {"metadata": {"name": "n" * 64}}, False),
    ("/apis/rbac.authorization.k8s.io/v1/namespaces/v1/roles", {"metadata": {"name": "system:Odd_Name"}, "rules": []}, True),
    ("/apis/rbac.authorization.k8s.io/v1/namespaces/v1/roles", {"metadata": {"name": "a/b"}, "rules": []}, False),
])
def test_names_follow_each_kinds_rule(kube: emulator.KubeEmulator, path: str, body: dict[str, object], accepted: bool) -> None:
    answer = call(kube, "POST", path, body)
    assert (answer.code == 201) is accepted, answer.body
    if not accepted:
        assert answer.code == 422 and answer.body["reason"] == "Invalid"
        assert answer.body["details"]["causes"][0]["field"] == "metadata.name"


@pytest.mark.parametrize(("labels", "field"), [
    ({"app": "v" * 64}, "metadata.labels"),
    ({"app": "has/slash"}, "metadata.labels"),
    ({"app": "-dash-first"}, "metadata.labels"),
    ({"n" * 64: "x"}, "metadata.labels"),
    ({"Bad_Prefix/key": "x"}, "metadata.labels"),
])
def test_bad_labels_are_refused(kube: emulator.KubeEmulator, labels: dict[str, str], field: str) -> None:
    answer = call(kube, "POST", "/api/v1/namespaces/v2/configmaps", configmap("l", labels=labels))
    assert answer.code == 422 and answer.body["details"]["causes"][0]["field"] == field


def test_labels_are_checked_on_updates_and_in_pod_templates(kube: emulator.KubeEmulator) -> None:
    kube.create(configmap("u", namespace="v3", labels={"app": "ok", "example.com/part": "A_b.c", "empty": ""}))
    answer = call(kube, "PATCH", "/api/v1/namespaces/v3/configmaps/u", {"metadata": {"labels": {"app": "x" * 64}}},
                  "application/merge-patch+json")
    assert answer.code == 422
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                      "metadata": {"labels": {"app": "d", "model": "org/model"}}, "spec": {"containers": []}}}}
    answer = call(kube, "POST", "/apis/apps/v1/namespaces/v3/deployments", deployment)
    assert answer.code == 422 and answer.body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


def test_generate_name_is_cut_to_58_characters(kube: emulator.KubeEmulator) -> None:
    answer = call(kube, "POST", "/api/v1/namespaces/v4/configmaps", configmap("", generateName="g" * 70 + "-"))
    assert answer.code == 201 and len(answer.body["metadata"]["name"]) == 63


def server(name: str, **extra: object) -> dict[str, object]:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "unknownMeta": 1},
            "spec": {"model": "m", "source": {"pvc": {"claimName": "c", "bogus": True}}, "notAField": 1}, **extra}


def test_unknown_fields_of_custom_resources_are_pruned_with_a_warning(kube: emulator.KubeEmulator) -> None:
    answer = call(kube, "POST", LLMS.format(ns="v5"), server("p", extra={"x": 1}))
    assert answer.code == 201
    spec = answer.body["spec"]
    assert "notAField" not in spec and "bogus" not in spec["source"]["pvc"]
    assert "extra" not in answer.body and "unknownMeta" not in answer.body["metadata"]
    warnings = answer.headers.get_all("Warning")
    assert any('unknown field \\"spec.notAField\\"' in w for w in warnings), warnings
    status = call(kube, "PATCH", LLMS.format(ns="v5") + "/p/status",
                  {"status": {"phase": "Ready", "invented": {"a": 1}}}, "application/merge-patch+json")
    assert status.body["status"]["phase"] == "Ready" and "invented" not in status.body["status"]
    affinity = {"nodeAffinity": {"anything": ["goes", "here"]}}
    kept = call(kube, "PATCH", LLMS.format(ns="v5") + "/p", {"spec": {"resources": {"affinity": affinity}}},
                "application/merge-patch+json")
    assert kept.body["spec"]["resources"]["affinity"] == affinity  # x-kubernetes-preserve-unknown-fields


def test_strict_field_validation_refuses_unknown_fields(kube: emulator.KubeEmulator) -> None:
    answer = call(kube, "POST", LLMS.format(ns="v6") + "?fieldValidation=Strict", server("s"))
    assert answer.code == 400 and 'unknown field "spec.notAField"' in answer.body["message"]
    assert kube.get("serving.llmserver.dev/v1alpha1", "LLMServer", "s", "v6") is None
