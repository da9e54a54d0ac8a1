"""Every object the chart renders, for every CI value set, is valid Kubernetes.

Built-in kinds and the CRDs: kubernetes-validate against the Kubernetes 1.30 OpenAPI schemas in
strict mode (unknown fields fail). Prometheus Operator kinds (ServiceMonitor, PodMonitor,
PrometheusRule), which kubernetes-validate does not know: the validators compiled from the
Prometheus Operator's Go types (npm @kubernetes-models/prometheus-operator, installed by
scripts/setup-tools.sh), run with node.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest

from testkit import helm

pytestmark = pytest.mark.timeout(120)

K8S_VERSION = "1.30"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
NODE_VALIDATOR = pathlib.Path(__file__).with_name("validate_monitoring.mjs")


def _validate_monitoring(objects: list[dict[str, Any]]) -> list[str]:
    """Problems node's validators report, one line per invalid object."""
    node = shutil.which("node")
    package = helm.NODE_TOOLS / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    assert node is not None, "node is not installed (it comes with npm)"
    assert package.is_dir(), f"{package} is missing: run `bash scripts/setup-tools.sh`"
    result = subprocess.run([node, str(NODE_VALIDATOR), str(package)], input=json.dumps(objects),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode in (0, 1), result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("INVALID")]


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_every_object_is_valid(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    assert objects
    monitoring = []
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:
            monitoring.append(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    if monitoring:
        assert _validate_monitoring(monitoring) == []


def test_the_monitoring_validator_catches_mistakes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The node validator is a real check: a wrongly typed field is reported."""
    monitor = next(obj for obj in rendered["monitoring"] if obj["kind"] == "PodMonitor")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = 30
    problems = _validate_monitoring([broken])
    assert len(problems) == 1 and "interval" in problems[0], problems


def test_strict_validation_catches_unknown_fields(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = next(obj for obj in rendered["default"] if obj["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_each_value_set_renders_what_it_enables(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {name: sorted({obj["kind"] for obj in objects}) for name, objects in rendered.items()}
    assert kinds["default"] == ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
                                "Role", "RoleBinding", "Secret", "Service",
                                "ServiceAccount"]  # Role: the operator reads Mac Leases; Secret: gateway API keys
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"} <= set(kinds["monitoring"])
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(kinds["production"])
    assert {"Role", "RoleBinding"} <= set(kinds["namespaced"])
