"""Switching an LLMServer between modes (cluster, Mac, Proxy), both ways, with the real operator:
afterwards exactly the new mode's children exist, the EndpointSlices point only where the new mode
serves, and status carries no stale placement (the Mac's agent would keep serving it)."""

from __future__ import annotations

import datetime
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
APPLE_NS = "llmserver-system"
MAC = "mac-studio"
MAC_PORT = 18000
RBAC = "rbac.authorization.k8s.io/v1"
KINDS = (("apps/v1", "Deployment"), ("batch/v1", "Job"), ("v1", "Service"), ("v1", "ServiceAccount"),
         (RBAC, "Role"), (RBAC, "RoleBinding"), ("discovery.k8s.io/v1", "EndpointSlice"))
SPECS: dict[str, dict[str, Any]] = {
    "cluster": {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}}},
    "mac": {"model": "tiny", "backend": "mlx", "source": {"huggingFace": {"repo": "mlx-community/tiny"}}},
    "proxy": {"model": "tiny", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}},
}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def mac(cluster: Cluster) -> Iterator[str]:
    """A Ready AppleNode whose Lease is renewed every second, as its agent would (the test writes
    what an agent reports; the operator needs to see renewals to trust a Mac)."""
    cluster.kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": f"applenode-{MAC}", "namespace": APPLE_NS},
                         "spec": {"holderIdentity": MAC, "leaseDurationSeconds": 30, "renewTime": _now()}})
    cluster.kube.create({"apiVersion": fake_cluster.LLMS, "kind": "AppleNode", "metadata": {"name": MAC},
                         "spec": {"address": "10.0.0.9", "unifiedMemory": "1Ti", "backends": ["mlx", "mlx-vlm"]}})
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(1.0):
            cluster.kube.patch("coordination.k8s.io/v1", "Lease", f"applenode-{MAC}", {"spec": {"renewTime": _now()}}, APPLE_NS)

    agent = threading.Thread(target=renew, name="fake-mac-agent", daemon=True)
    agent.start()
    cluster.kube.wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in (
        (cluster.kube.get(fake_cluster.LLMS, "AppleNode", MAC, None) or {}).get("status") or {}).get("conditions") or []), 30)
    yield MAC
    stop.set()
    agent.join(5)


def _serve_on_mac(cluster: Cluster, ns: str, name: str) -> None:
    """What the Mac's agent reports once the model placed on it runs."""
    node = cluster.kube.get(fake_cluster.LLMS, "AppleNode", MAC, None) or {}
    models = [m for m in (node.get("status") or {}).get("models") or [] if m["server"] != f"{ns}/{name}"]
    models.append({"server": f"{ns}/{name}", "model": "tiny", "state": "Ready", "port": MAC_PORT})
    cluster.kube.patch(fake_cluster.LLMS, "AppleNode", MAC, {"status": {"models": models}}, None, subresource="status")


def children(cluster: Cluster, ns: str, name: str) -> set[tuple[str, str]]:
    """Every object of the server: labelled with it, or an EndpointSlice of its Service."""
    found = set()
    for api_version, kind in KINDS:
        for obj in cluster.kube.list(api_version, kind, ns, labels=f"serving.llmserver.dev/server={name}"):
            if not obj["metadata"].get("deletionTimestamp"):
                found.add((kind, obj["metadata"]["name"]))
    for obj in cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", ns, labels=f"kubernetes.io/service-name={name}"):
        found.add(("EndpointSlice", obj["metadata"]["name"]))
    return found


def expected(cluster: Cluster, mode: str, name: str, ns: str) -> set[tuple[str, str]]:
    """What each mode owns once Ready."""
    if mode == "proxy":
        return set()
    if mode == "mac":
        return {("Service", name), ("EndpointSlice", f"{name}-apple"), ("Role", f"{name}-apple-agent"),
                ("RoleBinding", f"{name}-apple-agent")}
    [job] = [j["metadata"]["name"] for j in cluster.kube.list("batch/v1", "Job", ns, labels=f"serving.llmserver.dev/server={name}")]
    slices = {("EndpointSlice", s["metadata"]["name"]) for s in cluster.kube.list(
        "discovery.k8s.io/v1", "EndpointSlice", ns, labels=f"kubernetes.io/service-name={name}")}
    assert slices and all(not n.endswith("-apple") for _, n in slices)
    return {("Deployment", name), ("Service", name), ("Job", job), ("ServiceAccount", f"{name}-download"),
            ("Role", f"{name}-download"), ("RoleBinding", f"{name}-download")} | slices


def settle(cluster: Cluster, mode: str, name: str, ns: str) -> None:
    """Waits until the server is Ready in `mode` with exactly that mode's children, and checks them."""
    if mode == "mac":
        cluster.kube.wait_for(lambda: (cluster.status(name, ns).get("placement") or {}).get("node") == MAC, 30)
        _serve_on_mac(cluster, ns, name)
    status = cluster.wait_phase(name, "Ready", ns)
    cluster.kube.wait_for(lambda: children(cluster, ns, name) == expected(cluster, mode, name, ns), 30,
                          f"only the {mode} children of {name}: {children(cluster, ns, name)}")
    service = cluster.kube.get("v1", "Service", name, ns)
    if mode == "cluster":
        assert service["spec"]["selector"]["serving.llmserver.dev/server"] == name
        assert status.get("placement") is None
        assert cluster.kube.get(fake_cluster.LLMS, "LLMServer", name, ns)["status"].get("placement") is None
    elif mode == "mac":
        assert "selector" not in service["spec"]
        [endpoints] = cluster.kube.get("discovery.k8s.io/v1", "EndpointSlice", f"{name}-apple", ns)["endpoints"]
        assert endpoints["addresses"] == ["10.0.0.9"]
        assert status["placement"]["node"] == MAC
        cluster.kube.wait_for(lambda: any(e.get("reason") == "PlacedOnAppleNode" and e["involvedObject"]["name"] == name
                                          for e in cluster.kube.list("v1", "Event", ns)), 10, "a PlacedOnAppleNode event")
    else:
        assert status.get("placement") is None


@pytest.mark.parametrize(("first", "then"), list(itertools.permutations(SPECS, 2)))
def test_a_mode_switch_leaves_only_the_new_modes_objects(cluster: Cluster, mac: str, ns: str, first: str, then: str) -> None:
    del mac
    name = "sw"
    specs = {mode: {**spec, "model": f"{first}-{then}"} for mode, spec in SPECS.items()}  # one model name per server
    cluster.apply_server(name, ns, **specs[first])
    settle(cluster, first, name, ns)
    cluster.apply_server(name, ns, **specs[then])
    settle(cluster, then, name, ns)
    cluster.apply_server(name, ns, **specs[first])  # and back
    settle(cluster, first, name, ns)
