"""`helm lint --strict` on the default values and every CI value set (warnings fail too)."""

from __future__ import annotations

import pytest

from testkit import helm

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_helm_lint_strict(name: str) -> None:
    result = helm.run_helm("lint", "--strict", str(helm.CHART), "--namespace", helm.NAMESPACE,
                           values=helm.VALUE_SETS[name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_chart_is_api_v2_for_helm_3_and_4() -> None:
    import yaml

    chart = yaml.safe_load((helm.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"  # Helm 3 and Helm 4 both read v2 charts
    assert chart["type"] == "application"
    assert "dependencies" not in chart  # nothing to fetch: the chart installs offline
