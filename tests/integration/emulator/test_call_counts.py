"""API calls are counted by verb and kind (what the scale benchmark reports per server)."""

from __future__ import annotations

import pytest
from testkit import emulator
from testkit.emulator_client import call, configmap

pytestmark = pytest.mark.timeout(60)


def test_calls_are_counted_by_verb_and_kind(kube: emulator.KubeEmulator) -> None:
    since = len(kube.requests)
    call(kube, "POST", "/api/v1/namespaces/c1/configmaps", configmap("c"))
    call(kube, "GET", "/api/v1/namespaces/c1/configmaps/c")
    call(kube, "GET", "/api/v1/namespaces/c1/configmaps")
    call(kube, "PATCH", "/api/v1/namespaces/c1/configmaps/c", {"data": {"b": "2"}}, "application/merge-patch+json")
    call(kube, "PATCH", "/apis/apps/v1/namespaces/c1/deployments/none/status", {}, "application/merge-patch+json")
    call(kube, "DELETE", "/api/v1/namespaces/c1/configmaps/c")
    call(kube, "GET", "/api")  # discovery is not an API call on a resource
    assert kube.calls(since) == {("create", "ConfigMap"): 1, ("get", "ConfigMap"): 1, ("list", "ConfigMap"): 1,
                                 ("patch", "ConfigMap"): 1, ("patch", "Deployment/status"): 1, ("delete", "ConfigMap"): 1}
    assert [w.verb for w in kube.writes(since)] == ["create", "patch", "patch", "delete"]
    assert kube.calls(since, agent="kopf") == {}
