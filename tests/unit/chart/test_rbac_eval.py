"""The offline RBAC evaluator the chart's RBAC audit relies on (tests/integration/rbac)."""

from __future__ import annotations

import pytest

from testkit import helm, rbac


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/apis/serving.llmserver.dev/v1alpha1/llmservers", {"watch": "true"}, ("watch", "serving.llmserver.dev", "llmservers", None, None)),
    ("GET", "/apis/apps/v1/namespaces/ml/deployments", {}, ("list", "apps", "deployments", "ml", None)),
    ("PATCH", "/apis/serving.llmserver.dev/v1alpha1/namespaces/ml/llmservers/x/status", {}, ("patch", "serving.llmserver.dev", "llmservers/status", "ml", "x")),
    ("PUT", "/api/v1/namespaces/ml/services/x", {}, ("update", "", "services", "ml", "x")),
    ("POST", "/api/v1/namespaces/ml/events", {}, ("create", "", "events", "ml", None)),
    ("DELETE", "/apis/batch/v1/namespaces/ml/jobs/j", {}, ("delete", "batch", "jobs", "ml", "j")),
    ("GET", "/api/v1/namespaces/ml/secrets/s", {}, ("get", "", "secrets", "ml", "s")),
])
def test_request_info(method: str, path: str, query: dict[str, str], expected: tuple) -> None:
    info = rbac.request_info(method, path, query)
    assert info is not None and (info.verb, info.group, info.resource, info.namespace, info.name) == expected


def test_discovery_is_not_a_resource_request() -> None:
    assert rbac.request_info("GET", "/apis", {}) is None
    assert rbac.request_info("GET", "/apis/apps/v1", {}) is None


def test_grants_follow_bindings_and_scope(rendered) -> None:
    account = f"{helm.RELEASE}-llmserver-gateway"
    granted = rbac.grants(rendered["auth"], account, helm.NAMESPACE)
    assert rbac.allowed(rbac.Request("get", "", "secrets", "anywhere", "x"), granted)  # ClusterRole: every namespace
    assert not rbac.allowed(rbac.Request("list", "", "secrets", "anywhere", None), granted)
    assert not rbac.allowed(rbac.Request("create", "apps", "deployments", "ml", None), granted)
    assert rbac.grants(rendered["auth"], account, "other-namespace") == set()  # bound to the release's SA only
    single = rbac.grants(rendered["single-namespace"], account, helm.NAMESPACE)
    assert rbac.allowed(rbac.Request("watch", "serving.llmserver.dev", "llmservers", "team-a", None), single)
    assert not rbac.allowed(rbac.Request("watch", "serving.llmserver.dev", "llmservers", "team-b", None), single)
    assert not rbac.allowed(rbac.Request("watch", "serving.llmserver.dev", "llmservers", None, None), single)


def test_resource_names_restrict() -> None:
    grant = rbac.Grant("get", "", "secrets", "ns", ("keys",))
    assert rbac.allowed(rbac.Request("get", "", "secrets", "ns", "keys"), [grant])
    assert not rbac.allowed(rbac.Request("get", "", "secrets", "ns", "other"), [grant])
    assert rbac.used(grant, [rbac.Request("get", "", "secrets", "ns", "keys")])
