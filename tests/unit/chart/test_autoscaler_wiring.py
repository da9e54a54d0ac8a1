"""The chart points the operator's autoscaler at its own gateway Service, and grants what it reads there.

LLMSERVER_OPERATOR_GATEWAY_SERVICE must name the rendered gateway Service (namespace/name) with a port
named `http` (the port the autoscaler asks on, through the EndpointSlices of that Service); without a
gateway there is nothing to read: no setting and no autoscaler Role."""

from __future__ import annotations

from typing import Any

from llmserver_operator.autoscaler import gateways
from testkit import helm, rbac


def _operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return helm.container_env(helm.one(objects, "Deployment", "-operator"))


def test_the_operator_reads_the_charts_gateway_service() -> None:
    objects = helm.template({})
    ref = gateways.ServiceRef.parse(_operator_env(objects)["LLMSERVER_OPERATOR_GATEWAY_SERVICE"])
    [service] = [o for o in helm.by_kind(objects, "Service")
                 if (o["metadata"]["namespace"], o["metadata"]["name"]) == (ref.namespace, ref.name)]
    assert "http" in [port.get("name") for port in service["spec"]["ports"]]
    granted = rbac.grants(objects, f"{helm.RELEASE}-llmserver-operator", helm.NAMESPACE)
    assert rbac.allowed(rbac.Request("list", "discovery.k8s.io", "endpointslices", ref.namespace, None), granted)


def test_scale_is_granted_in_watched_namespaces() -> None:
    objects = helm.template({"operator": {"watchNamespaces": ["team"]}, "apple": {"enabled": False}})
    granted = rbac.grants(objects, f"{helm.RELEASE}-llmserver-operator", helm.NAMESPACE)
    assert rbac.allowed(rbac.Request("patch", "serving.llmserver.dev", "llmservers/scale", "team", "chat"), granted)
    assert not rbac.allowed(rbac.Request("patch", "serving.llmserver.dev", "llmservers/scale", "other", "x"), granted)
    assert rbac.allowed(rbac.Request("list", "discovery.k8s.io", "endpointslices", helm.NAMESPACE, None), granted)
    assert not rbac.allowed(rbac.Request("list", "discovery.k8s.io", "endpointslices", "other", None), granted)


def test_no_gateway_no_autoscaler_setting_or_role() -> None:
    objects = helm.template({"gateway": {"enabled": False}, "operator": {"watchNamespaces": ["team"]},
                             "apple": {"enabled": False}})
    assert "LLMSERVER_OPERATOR_GATEWAY_SERVICE" not in _operator_env(objects)
    assert not [o for o in objects if o["metadata"]["name"].endswith("-operator-autoscaler")]
