"""Garbage collection is asynchronous and follows the propagation policy, as kube-controller-manager's."""

from __future__ import annotations

import pytest
from testkit.emulator_client import call, configmap, owner_ref
from testkit import emulator

pytestmark = pytest.mark.timeout(60)


def names(kube: emulator.KubeEmulator, namespace: str) -> list[str]:
    return [c["metadata"]["name"] for c in kube.list("v1", "ConfigMap", namespace)]


def test_background_deletion_returns_first_and_collects_dependents_later(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("owner", namespace="gc1"))
    child = kube.create(configmap("child", namespace="gc1", ownerReferences=[owner_ref(owner)]))
    kube.create(configmap("grandchild", namespace="gc1", ownerReferences=[owner_ref(child)]))
    kube.create(configmap("free", namespace="gc1"))
    kube.gc.pause()
    try:
        answer = call(kube, "DELETE", "/api/v1/namespaces/gc1/configmaps/owner", {"propagationPolicy": "Background"})
        assert answer.code == 200
        assert names(kube, "gc1") == ["child", "free", "grandchild"]  # the owner is gone, its dependents not yet
    finally:
        kube.gc.resume()
    kube.gc.idle()
    assert names(kube, "gc1") == ["free"]


def test_a_dependent_with_another_live_owner_only_loses_the_dangling_reference(kube: emulator.KubeEmulator) -> None:
    first, second = kube.create(configmap("first", namespace="gc2")), kube.create(configmap("second", namespace="gc2"))
    kube.create(configmap("shared", namespace="gc2", ownerReferences=[owner_ref(first), owner_ref(second)]))
    kube.delete("v1", "ConfigMap", "first", "gc2")
    kube.gc.idle()
    assert kube.get("v1", "ConfigMap", "shared", "gc2")["metadata"]["ownerReferences"] == [owner_ref(second)]


def test_foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("fg", namespace="gc3"))
    kube.create(configmap("held", namespace="gc3", ownerReferences=[owner_ref(owner, block=True)],
                          finalizers=["example.com/hold"]))
    kube.delete("v1", "ConfigMap", "fg", "gc3", propagation="Foreground")
    marked = kube.get("v1", "ConfigMap", "fg", "gc3")
    assert marked["metadata"]["deletionTimestamp"] and "foregroundDeletion" in marked["metadata"]["finalizers"]
    kube.gc.idle()
    assert kube.get("v1", "ConfigMap", "held", "gc3")["metadata"]["deletionTimestamp"]  # deleted, held by its finalizer
    assert kube.get("v1", "ConfigMap", "fg", "gc3") is not None  # so the owner waits
    kube.patch("v1", "ConfigMap", "held", {"metadata": {"finalizers": None}}, "gc3")
    kube.wait_for(lambda: kube.get("v1", "ConfigMap", "fg", "gc3") is None, 10)


def test_orphan_deletion_keeps_dependents_and_removes_the_reference(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("o", namespace="gc4"))
    kube.create(configmap("kept", namespace="gc4", ownerReferences=[owner_ref(owner)]))
    kube.gc.pause()
    try:
        kube.delete("v1", "ConfigMap", "o", "gc4", propagation="Orphan")
        assert kube.get("v1", "ConfigMap", "o", "gc4")["metadata"]["finalizers"] == ["orphan"]
    finally:
        kube.gc.resume()
    kube.gc.idle()
    assert kube.get("v1", "ConfigMap", "o", "gc4") is None
    assert kube.get("v1", "ConfigMap", "kept", "gc4")["metadata"]["ownerReferences"] == []


def test_a_dependent_of_a_missing_owner_is_collected(kube: emulator.KubeEmulator) -> None:
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}
    kube.create(configmap("stray", namespace="gc5", ownerReferences=[ghost]))
    kube.gc.idle()
    assert kube.get("v1", "ConfigMap", "stray", "gc5") is None


def test_deleting_a_deployment_collects_its_pods_across_kinds(kube: emulator.KubeEmulator) -> None:
    deployment = kube.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "gc6"},
                              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                                  "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "gc6",
                                                                  "ownerReferences": [owner_ref(deployment, block=True)]},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
    kube.delete("apps/v1", "Deployment", "web", "gc6")
    kube.wait_for(lambda: not kube.list("v1", "Pod", "gc6"), 10, "the pod collected")
