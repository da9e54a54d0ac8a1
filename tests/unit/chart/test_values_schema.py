"""values.schema.json covers every value, describes each, and refuses bad values by name."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from testkit import helm

SCHEMA = json.loads((helm.CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((helm.CHART / "values.yaml").read_text())


def _walk_schema(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, child in (node.get("properties") or {}).items():
        found += _walk_schema(child, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"].get("properties"):
        found += _walk_schema(node["additionalProperties"], f"{path}.*")
    return found


def _leaf_paths(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of values.yaml whose schema node is missing (a value the schema does not know)."""
    missing = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        for key, child in value.items():
            if key in props:
                missing += _leaf_paths(child, props[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                missing += _leaf_paths(child, schema["additionalProperties"], f"{path}.{key}")
            elif schema.get("additionalProperties") is not False and not props:
                continue  # free-form maps (labels, annotations, affinity)
            else:
                missing.append(f"{path}.{key}")
    return missing


def test_every_value_has_a_schema_entry() -> None:
    assert _leaf_paths(VALUES, SCHEMA) == []
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


def test_every_schema_entry_is_described_and_closed() -> None:
    for path, node in _walk_schema(SCHEMA):
        if path:
            assert node.get("description"), f"{path} has no description"
        if node.get("type") == "object" and node.get("properties"):
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"


@pytest.mark.parametrize(("values", "field"), [
    ({"operator": {"replicaz": 2}}, "replicaz"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"gateway": {"service": {"type": "Ingress"}}}, "/gateway/service/type"),
    ({"gateway": {"service": {"nodePort": 80}}}, "/gateway/service/nodePort"),
    ({"profiles": {"tiny": {"cpu": "lots", "memory": "1Gi", "gpuResourceName": "nvidia.com/gpu"}}}, "/profiles/tiny/cpu"),
    ({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}, "/operator/watchNamespaces/0"),
    ({"monitoring": {"serviceMonitor": {"interval": "often"}}}, "/monitoring/serviceMonitor/interval"),
    ({"runtime": {"images": {"cpu": {"digest": "latest"}}}}, "/runtime/images/cpu/digest"),
    ({"runtime": {"images": {"cpu": {"engines": ["tensorrt"]}}}}, "/runtime/images/cpu/engines/0"),
    ({"runtime": {"images": {"rocm": {"repository": "r", "engines": ["vllm"], "accelerators": ["amd gpu"]}}}},
     "/runtime/images/rocm/accelerators/0"),
    ({"operator": {"metricsPort": 80}}, "/operator/metricsPort"),
    ({"monitoring": {"prometheusRule": {"reconcileErrorRatio": 2}}}, "/monitoring/prometheusRule/reconcileErrorRatio"),
])
def test_helm_refuses_bad_values_naming_the_field(values: dict[str, Any], field: str) -> None:
    error = helm.template_error(values)
    assert "values don't meet the specifications of the schema" in error
    assert field in error, error


def test_unknown_profile_is_refused_by_name() -> None:
    error = helm.template_error({"runtime": {"profile": "gpu-huge"}})
    assert 'runtime.profile "gpu-huge" is not a key of profiles' in error


def test_network_policy_values_are_checked() -> None:
    error = helm.template_error({"networkPolicy": {"namespaces": ["ml"]}})  # gone: the operator covers every namespace
    assert "networkPolicy" in error and "namespaces" in error
    error = helm.template_error({"networkPolicy": {"prometheus": {"podSelector": {"matchLabel": {"a": "b"}}}}})
    assert "/networkPolicy/prometheus/podSelector" in error
