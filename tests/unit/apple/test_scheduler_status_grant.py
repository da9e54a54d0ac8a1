"""The operator's scheduler gives the Mac a server is placed on (and only that Mac) the right to
patch the server's status, and takes it back when the server has no Mac."""

from __future__ import annotations

from typing import Any

import llmserver_api
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import scheduler

NS = "ml"


class _Kube:
    """Just what AppleScheduler.reconcile reads and writes, in memory."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str]] = []

    def list(self, kind: str, namespace: str | None, labels: Any = None) -> list[dict[str, Any]]:
        return self.nodes if kind == "AppleNode" else []

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def delete(self, kind: str, namespace: str | None, name: str, uid: str | None = None) -> bool:
        self.deleted.append((kind, name))
        return self.objects.pop((kind, namespace, name), None) is not None

    def patch_status(self, *args: Any) -> None:
        pass


def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": llmserver_api.API_VERSION, "kind": "AppleNode", "metadata": {"name": name},
            "spec": {"address": "10.0.0.7", "unifiedMemory": "64Gi"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "HeartbeatReceived",
                                       "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def _server() -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "s", "namespace": NS}, "spec": {
        "model": "s", "backend": "mlx", "source": {"pvc": {"claimName": "m"}}, "resources": {"memory": "1Gi"}}})


def _reconcile(kube: _Kube) -> list[dict[str, Any]]:
    applied: list[dict[str, Any]] = []

    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        applied.append(obj)
        kube.objects[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        return obj

    settings = settings_mod.Settings(apple_namespace="agents")
    scheduler.AppleScheduler(kube, settings).reconcile(_server(), {}, apply)  # type: ignore[arg-type]
    return applied


def test_the_placed_node_may_patch_the_servers_status() -> None:
    kube = _Kube([_node("m1")])
    applied = {(o["kind"], o["metadata"]["name"]): o for o in _reconcile(kube)}
    role = applied[("Role", "s-apple-agent")]
    assert role["rules"] == [{"apiGroups": [llmserver_api.GROUP], "resources": ["llmservers/status"],
                              "resourceNames": ["s"], "verbs": ["patch"]}]
    binding = applied[("RoleBinding", "s-apple-agent")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "applenode-m1", "namespace": "agents"}]
    assert binding["metadata"]["namespace"] == NS


def test_no_node_no_grant() -> None:
    kube = _Kube([_node("m1")])
    _reconcile(kube)
    kube.nodes = []  # the Mac is gone: nothing fits
    applied = _reconcile(kube)
    assert not [o for o in applied if o["kind"] in ("Role", "RoleBinding")]
    assert ("RoleBinding", "s-apple-agent") in kube.deleted
    assert ("RoleBinding", NS, "s-apple-agent") not in kube.objects
