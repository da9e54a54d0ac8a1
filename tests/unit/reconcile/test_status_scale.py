"""status.replicas and status.selector: what the scale subresource (kubectl scale, HPAs, KEDA) reads."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pytest
from llmserver_operator import status
from llmserver_operator.builders import common

pytestmark = pytest.mark.timeout(60)

COMPLETE = {"metadata": {"name": "tiny-download-1"}, "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}


def spec(**fields: Any) -> llmserver_api.LLMServerSpec:
    body = {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny"}}}
    body.update(fields)
    return llmserver_api.LLMServerSpec.model_validate(body)


def compute(observed: status.Observed, the_spec: llmserver_api.LLMServerSpec | None) -> dict[str, Any]:
    return status.compute(spec=the_spec, generation=2, previous=None, observed=observed, endpoint="http://gw/v1",
                          now="2026-01-01T00:00:00Z")


def running(pods: int, ready: int) -> dict[str, Any]:
    return {"metadata": {"generation": 1}, "status": {"replicas": pods, "readyReplicas": ready, "observedGeneration": 1,
                                                      "updatedReplicas": pods}}


def test_replicas_are_the_pods_the_deployment_runs_not_the_spec() -> None:
    wanted_three = spec(replicas=3)
    assert compute(status.Observed(job=COMPLETE), wanted_three)["replicas"] == 0  # no Deployment yet
    assert compute(status.Observed(job=COMPLETE, deployment=running(1, 1)), wanted_three)["replicas"] == 1
    scaled_down = compute(status.Observed(job=COMPLETE, deployment=running(2, 2)), spec(replicas=0))
    assert (scaled_down["replicas"], scaled_down["phase"]) == (2, "Unloaded")  # pods still terminating


def test_a_mac_counts_one_loaded_runtime_and_a_proxy_none() -> None:
    mlx = spec(backend="mlx", replicas=1)
    placement = llmserver_api.llmserver.Placement(node="mac-1")
    assert compute(status.Observed(), mlx)["replicas"] == 0
    assert compute(status.Observed(placement=placement), mlx)["replicas"] == 0  # placed, not loaded yet
    assert compute(status.Observed(placement=placement, placement_ready=True), mlx)["replicas"] == 1
    assert compute(status.Observed(placement=placement, placement_ready=True, placement_problem="crashed"), mlx)["replicas"] == 0
    proxy = spec(mode="Proxy", source=None, backend="auto", proxy={"url": "https://api.example/v1"})
    assert compute(status.Observed(), proxy)["replicas"] == 0


def test_selector_is_the_deployments_pod_selector_as_a_string() -> None:
    server = llmserver_api.LLMServer.model_validate({"metadata": {"name": "chat", "namespace": "ns"}, "spec": spec().to_wire()})
    selector = status.label_selector(common.selector(server))
    assert selector == "app.kubernetes.io/component=runtime,app.kubernetes.io/instance=chat,serving.llmserver.dev/server=chat"
    result = compute(status.Observed(selector=selector), spec())
    assert result["selector"] == selector
    assert status.changed({**result, "selector": None}, result)  # a new selector is written
    assert compute(status.Observed(invalid="bad"), None)["selector"] is None


def test_a_mac_model_scaled_to_zero_is_unloaded_not_starting() -> None:
    placement = llmserver_api.llmserver.Placement(node="mac-1")
    cold = compute(status.Observed(placement=placement), spec(backend="mlx", replicas=0))
    ready = {c["type"]: c for c in cold["conditions"]}["Ready"]
    assert (cold["phase"], cold["replicas"], ready["reason"]) == ("Unloaded", 0, "ScaledToZero")
    unloading = compute(status.Observed(placement=placement, placement_ready=True), spec(backend="mlx", replicas=0))
    assert (unloading["phase"], unloading["replicas"]) == ("Unloaded", 1)  # the agent has not stopped it yet
    assert compute(status.Observed(placement=placement), spec(backend="mlx", replicas=1))["phase"] == "Starting"
