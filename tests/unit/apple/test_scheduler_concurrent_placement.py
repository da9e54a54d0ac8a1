"""Placements decided at the same moment never promise one Mac more memory than it has."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any

import llmserver_api
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import scheduler

NS = "ml"
SERVERS = [f"s{i}" for i in range(6)]


class _Kube:
    """LLMServers and one AppleNode in memory; a list is slow, as a loaded API server is, so that
    parallel reconciles all read the allocations before any of them writes its placement."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.placements: dict[str, dict[str, Any] | None] = {name: None for name in SERVERS}
        self.node = {"apiVersion": llmserver_api.API_VERSION, "kind": "AppleNode", "metadata": {"name": "m1"},
                     "spec": {"address": "10.0.0.7", "unifiedMemory": "24Gi", "reservedMemory": "4Gi"},
                     "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "HeartbeatReceived",
                                                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}

    def list(self, kind: str, namespace: str | None, labels: Any = None) -> list[dict[str, Any]]:
        time.sleep(0.05)
        if kind == "AppleNode":
            return [self.node]
        with self.lock:
            return [_server(name, placement) for name, placement in self.placements.items()]

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return None

    def delete(self, *args: Any) -> bool:
        return False

    def patch_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        time.sleep(0.01)
        with self.lock:
            self.placements[name] = status["placement"]


def _server(name: str, placement: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer",
                           "metadata": {"name": name, "namespace": NS},
                           "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": "m"}},
                                    "resources": {"memory": "8Gi"}}}
    if placement is not None:
        raw["status"] = {"placement": placement}
    return raw


def test_concurrent_placements_fill_a_mac_without_overcommitting_it() -> None:
    kube = _Kube()
    placer = scheduler.AppleScheduler(kube, settings_mod.Settings())  # type: ignore[arg-type]
    start = threading.Barrier(len(SERVERS))

    def reconcile(name: str) -> scheduler.Outcome:
        start.wait()
        return placer.reconcile(llmserver_api.LLMServer.model_validate(_server(name)), {}, lambda obj: obj)

    with futures.ThreadPoolExecutor(len(SERVERS)) as pool:
        outcomes = list(pool.map(reconcile, SERVERS))
    placed = [name for name, placement in kube.placements.items() if placement and placement.get("node") == "m1"]
    assert len(placed) == 2, kube.placements  # 20Gi free after the reserve: two 8Gi models, never three
    refused = [o for o in outcomes if o.placement is None]
    assert len(refused) == 4 and all("needs 8.0GiB" in (o.problem or "") for o in refused)
