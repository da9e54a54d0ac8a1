"""The real operator against the API emulator: a Proxy the host policy refuses, a Proxy whose key
Secret is not opted in, and two LLMServers claiming one model name (the newer one is marked
ModelNameConflict until the older one goes)."""

from __future__ import annotations

import base64

import pytest
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

LABEL = "serving.llmserver.dev/proxy-key"


@pytest.fixture(scope="module")
def cluster():
    with fake_cluster.FakeCluster(proxy_allowed_hosts=["10.20.0.0/16"]) as running:
        yield running


def _secret(ns: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prov", "namespace": ns, "labels": labels or {}},
            "data": {"token": base64.b64encode(b"sk-x").decode()}}


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:9/v1", "loopback"), ("http://169.254.169.254/latest", "link-local"),
    ("http://kubernetes.default.svc/api", "cluster-internal"), ("https://api.example.com/v1?k=v", "query"),
    ("http://10.30.0.1/v1", "private"),
], ids=["loopback", "metadata", "service", "query", "unlisted-private"])
def test_a_refused_proxy_url_fails_with_proxy_not_allowed(
    cluster: fake_cluster.FakeCluster, url: str, why: str
) -> None:
    ns = f"refused-{why}"
    cluster.kube.create(_secret(ns, {LABEL: "true"}))
    cluster.apply_server("p", ns, model=f"refused-{why}", mode="Proxy",
                         proxy={"url": url, "apiKeySecretRef": {"name": "prov", "key": "token"}})
    status = cluster.wait_phase("p", "Failed", ns)
    ready = cluster.condition("p", "Ready", ns)
    assert (ready["status"], ready["reason"]) == ("False", "ProxyNotAllowed")
    assert why in ready["message"] and status.get("endpoint") is None


def test_a_listed_private_host_is_allowed(cluster: fake_cluster.FakeCluster) -> None:
    cluster.apply_server("p", "listed", model="listed", mode="Proxy", proxy={"url": "http://10.20.1.2:8000/v1"})
    cluster.wait_phase("p", "Ready", "listed")


def test_a_secret_must_be_opted_in_before_the_proxy_is_ready(cluster: fake_cluster.FakeCluster) -> None:
    ns = "opt-in"
    cluster.kube.create(_secret(ns))
    cluster.apply_server("p", ns, model="opt-in", mode="Proxy",
                         proxy={"url": "https://api.example.com/v1",
                                "apiKeySecretRef": {"name": "prov", "key": "token"}})
    cluster.wait_phase("p", "Pending", ns)
    assert cluster.condition("p", "Ready", ns)["reason"] == "SecretNotOptedIn"
    cluster.kube.patch("v1", "Secret", "prov", {"metadata": {"labels": {LABEL: "true"}}}, ns)
    status = cluster.wait_phase("p", "Ready", ns)  # the operator looked again on its own
    assert status["endpoint"]


def test_the_newer_claim_of_a_model_name_is_marked_until_the_older_goes(cluster: fake_cluster.FakeCluster) -> None:
    proxy = {"mode": "Proxy", "proxy": {"url": "https://api.example.com/v1"}}
    # Same creation second is likely: the gateway's tie-break (namespace/name) then agrees with the order.
    cluster.apply_server("first", "claim-a", model="contested", **proxy)
    cluster.wait_phase("first", "Ready", "claim-a")
    cluster.apply_server("second", "claim-b", model="contested", **proxy)

    def marked() -> bool:
        return cluster.condition("second", "Degraded", "claim-b").get("reason") == "ModelNameConflict"

    cluster.kube.wait_for(marked, 30)
    assert "claim-a/first" in cluster.condition("second", "Degraded", "claim-b")["message"]
    assert cluster.status("second", "claim-b").get("endpoint") is None
    assert cluster.condition("first", "Degraded", "claim-a")["status"] == "False"
    assert cluster.status("first", "claim-a")["endpoint"]

    cluster.kube.delete(fake_cluster.LLMS, "LLMServer", "first", "claim-a")
    cluster.kube.wait_for(lambda: cluster.condition("second", "Degraded", "claim-b").get("status") == "False", 30)
    assert cluster.status("second", "claim-b")["endpoint"]


def test_renaming_the_older_claim_frees_the_name(cluster: fake_cluster.FakeCluster) -> None:
    proxy = {"mode": "Proxy", "proxy": {"url": "https://api.example.com/v1"}}
    cluster.apply_server("old", "rename-a", model="renamed", **proxy)
    cluster.wait_phase("old", "Ready", "rename-a")
    cluster.apply_server("new", "rename-b", model="renamed", **proxy)
    cluster.kube.wait_for(
        lambda: cluster.condition("new", "Degraded", "rename-b").get("reason") == "ModelNameConflict", 30)
    cluster.apply_server("old", "rename-a", model="renamed-elsewhere", **proxy)
    cluster.kube.wait_for(lambda: cluster.condition("new", "Degraded", "rename-b").get("status") == "False", 30)
