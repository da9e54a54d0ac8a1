"""The chart ships the generated CRDs unchanged (never hand-edited copies)."""

from __future__ import annotations

import yaml

from llmserver_api import generate
from testkit import helm


def test_chart_crds_are_the_generated_ones() -> None:
    chart_crds = helm.CHART / "crds"
    expected = generate.rendered()
    assert sorted(path.name for path in chart_crds.glob("*.yaml")) == sorted(expected)
    for name, text in expected.items():
        assert (chart_crds / name).read_text() == text, f"{name} drifted: run `python -m llmserver_api.generate`"


def test_helm_installs_the_crds(rendered) -> None:
    crds = {obj["metadata"]["name"] for obj in rendered["default"] if obj["kind"] == "CustomResourceDefinition"}
    assert crds == {yaml.safe_load(text)["metadata"]["name"] for text in generate.rendered().values()}
