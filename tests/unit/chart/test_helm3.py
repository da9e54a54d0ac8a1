"""The chart works with Helm 3 as well as Helm 4: lint is clean and both render the same objects."""

from __future__ import annotations

import pytest

from testkit import helm

pytestmark = pytest.mark.timeout(180)


def test_helm3_binary_is_helm_3() -> None:
    result = helm.run_helm("version", "--short", major=3)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v3."), result.stdout


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_helm3_lint_strict(name: str) -> None:
    result = helm.run_helm("lint", "--strict", str(helm.CHART), "--namespace", helm.NAMESPACE,
                           values=helm.VALUE_SETS[name], major=3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def _unkeyed(obj: dict) -> dict:
    """The object with a generated gateway key masked (each render draws a new one)."""
    if obj["kind"] == "Secret" and obj["metadata"]["name"].endswith("-gateway-api-keys"):
        return {**obj, "data": {key: "<generated>" for key in obj["data"]}}
    return obj


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_helm3_renders_what_helm4_renders(name: str, rendered: dict[str, list[dict]]) -> None:
    helm3_objects = helm.template(helm.VALUE_SETS[name], include_crds=True, major=3)

    def keyed(objects: list[dict]) -> dict[tuple[str, str], dict]:
        return {(o["kind"], o["metadata"]["name"]): _unkeyed(o) for o in objects}

    assert keyed(helm3_objects) == keyed(rendered[name])


def test_helm3_refuses_values_outside_the_schema() -> None:
    result = helm.run_helm("template", helm.RELEASE, str(helm.CHART), values={"gateway": {"replicas": "two"}},
                           major=3)
    assert result.returncode != 0
    assert "replicas" in result.stderr
