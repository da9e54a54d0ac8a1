"""The autoscaler's loop against a recording stand-in for the API (no HTTP): which servers it tracks,
what one step writes (scale, Event, status) and what it leaves alone, Mac placement seen from the
spec, the resolved backend or a placement already made."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import watch_cache
from llmserver_operator.autoscaler import decision, loop

SOURCE = {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}}


class RecordingKube:
    """Answers writes like the API and records them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def patch_scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        self.calls.append(("scale", (namespace, name, replicas)))
        return {"kind": "Scale", "spec": {"replicas": replicas}}

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", obj))
        return obj

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("status", (namespace, name, status)))
        return {}


def server(name: str, replicas: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": "ml", "uid": f"u-{name}", "resourceVersion": "7"},
            "spec": {"model": name, "backend": "llama-cpp", "source": SOURCE, "replicas": replicas, **spec},
            "status": status or {}}
    return body


def scaler() -> tuple[loop.Autoscaler, RecordingKube, watch_cache.WatchCache]:
    kube, cache = RecordingKube(), watch_cache.WatchCache(["LLMServer"])
    return (loop.Autoscaler(kube, cache, metrics_mod.OperatorMetrics(), None,  # type: ignore[arg-type]
                            wall=lambda: "2026-12-02T21:00:00Z"), kube, cache)


def step(autoscaler: loop.Autoscaler, name: str, demand: decision.Demand | None) -> None:
    asyncio.run(autoscaler.step("ml", name, demand, 0.0))


def test_only_servers_with_autoscaling_are_tracked() -> None:
    autoscaler, _, _ = scaler()
    autoscaler.seen(server("plain"))
    autoscaler.seen(server("auto", autoscaling={"maxReplicas": 3}))
    autoscaler.seen(server("going", autoscaling={"maxReplicas": 3}) | {"metadata": {
        "name": "going", "namespace": "ml", "deletionTimestamp": "2026-12-02T21:00:00Z"}})
    assert autoscaler.tracked() == [("ml", "auto")]
    autoscaler.seen(server("auto"))  # the block was removed
    assert autoscaler.tracked() == []


def test_one_step_writes_the_scale_an_event_and_the_status() -> None:
    autoscaler, kube, cache = scaler()
    body = server("chat", autoscaling={"maxReplicas": 4, "targetInFlight": 2})
    cache.store(body)
    autoscaler.seen(body)
    step(autoscaler, "chat", decision.Demand(7))
    assert [kind for kind, _ in kube.calls] == ["scale", "create", "status"]
    assert kube.calls[0][1] == ("ml", "chat", 4)
    assert kube.calls[1][1]["reason"] == "ScaledUp" and kube.calls[1][1]["involvedObject"]["uid"] == "u-chat"
    assert kube.calls[2][1][2]["autoscaling"]["desiredReplicas"] == 4
    assert autoscaler.metrics.autoscaler_desired.labels("ml", "chat")._value.get() == 4


def test_an_invalid_or_unknown_server_is_not_touched() -> None:
    autoscaler, kube, cache = scaler()
    cache.store(server("bad", autoscaling={"maxReplicas": 0}))  # refused by the API model
    step(autoscaler, "bad", decision.Demand(50))
    step(autoscaler, "missing", decision.Demand(50))
    assert kube.calls == []


@pytest.mark.parametrize(("spec", "status"), [
    ({"backend": "mlx"}, {}),
    ({"backend": "auto", "apple": {}}, {}),
    ({"backend": "auto"}, {"resolved": {"backend": "mlx-vlm"}}),
    ({"backend": "auto"}, {"placement": {"node": "m2"}}),
])
def test_a_mac_placed_server_is_scaled_to_one_at_most(spec: dict[str, Any], status: dict[str, Any]) -> None:
    autoscaler, kube, cache = scaler()
    body = server("mac", replicas=0, status=status,
                  autoscaling={"minReplicas": 0, "maxReplicas": 4, "targetInFlight": 1})
    body["spec"].update(spec)
    cache.store(body)
    step(autoscaler, "mac", decision.Demand(30))
    assert kube.calls[0] == ("scale", ("ml", "mac", 1))


def test_a_cluster_server_is_not_taken_for_a_mac() -> None:
    autoscaler, kube, cache = scaler()
    cache.store(server("gpu", autoscaling={"maxReplicas": 4, "targetInFlight": 1}))
    step(autoscaler, "gpu", decision.Demand(30))
    assert kube.calls[0] == ("scale", ("ml", "gpu", 4))


def test_a_removed_block_clears_status_autoscaling_once() -> None:
    autoscaler, kube, cache = scaler()
    body = server("was", status={"autoscaling": {"desiredReplicas": 2}})
    cache.store(body)
    autoscaler.seen(body)
    asyncio.run(autoscaler.clear_stale())
    asyncio.run(autoscaler.clear_stale())
    assert kube.calls == [("status", ("ml", "was", {"autoscaling": None}))]
