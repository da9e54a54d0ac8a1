"""Status for children that cannot be written (ChildConflict, InvalidChild), and no stale Mac
placement once a server left Mac mode (its agent serves whatever status.placement names)."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pytest
from llmserver_operator import status

NOW = "2026-01-01T00:00:00Z"
PLACED = {"placement": {"node": "m1", "address": "10.0.0.1", "port": 18000, "reason": "placed on m1"}}


def spec(**fields: Any) -> llmserver_api.LLMServerSpec:
    body = {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny"}}, **fields}
    return llmserver_api.LLMServerSpec.model_validate(body)


def compute(observed: status.Observed, the_spec: llmserver_api.LLMServerSpec, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    return status.compute(spec=the_spec, generation=2, previous=previous, observed=observed, endpoint="http://gw/v1", now=NOW)


@pytest.mark.parametrize("reason", ["ChildConflict", "InvalidChild"])
def test_a_child_problem_fails_the_server_with_its_reason(reason: str) -> None:
    result = compute(status.Observed(child_problem=(reason, "Service 'x' already exists")), spec())
    by_type = {c["type"]: c for c in result["conditions"]}
    assert result["phase"] == "Failed" and result["message"] == "Service 'x' already exists"
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", reason)
    assert (by_type["Degraded"]["status"], by_type["Degraded"]["reason"]) == ("True", reason)
    assert result["endpoint"] is None


@pytest.mark.parametrize("the_spec", [spec(), spec(mode="Proxy", proxy={"url": "https://api.example/v1"}, source=None)],
                         ids=["cluster", "proxy"])
def test_leaving_mac_mode_clears_the_placement(the_spec: llmserver_api.LLMServerSpec) -> None:
    previous = {**PLACED, "phase": "Ready"}
    result = compute(status.Observed(), the_spec, previous)
    assert "placement" in result and result["placement"] is None
    assert status.changed(previous, result)
    settled = {**previous, **result}
    assert not status.changed({k: v for k, v in settled.items() if k != "placement"}, compute(status.Observed(), the_spec, settled | {"placement": None}))


def test_a_mac_server_keeps_its_placement_and_others_never_write_one() -> None:
    mac = spec(backend="mlx")
    assert "placement" not in compute(status.Observed(), mac, {**PLACED})
    assert "placement" not in compute(status.Observed(), spec(), {"placement": None})
