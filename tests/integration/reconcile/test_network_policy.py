"""NetworkPolicy `N` with the real operator: written next to a cluster-hosted server in whatever
namespace it lives (the chart cannot list them in a cluster-wide install), kept in line with its
spec, and gone once the server switches to Proxy (nothing of its own runs then)."""

from __future__ import annotations

import pytest
from llmserver_operator.builders import common
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

NETPOL = "networking.k8s.io/v1"
CLUSTER = {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}}}
PROXY = {"model": "tiny", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}}


def test_cluster_server_gets_its_policy_and_loses_it_on_a_switch_to_proxy(cluster: fake_cluster.FakeCluster) -> None:
    ns = "team-nobody-listed"  # the operator watches every namespace; the chart never heard of this one
    cluster.apply_server("np", ns, **CLUSTER)
    cluster.wait_phase("np", "Ready", ns)
    policy = cluster.kube.get(NETPOL, "NetworkPolicy", "np", ns)
    assert policy is not None
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "runtime",
                                                             "app.kubernetes.io/instance": "np",
                                                             common.SERVER_LABEL: "np"}}
    pods = cluster.kube.list("v1", "Pod", ns, labels=f"{common.SERVER_LABEL}=np")
    selected = [p for p in pods if policy["spec"]["podSelector"]["matchLabels"].items() <= p["metadata"]["labels"].items()]
    assert selected == [p for p in pods if "job-name" not in p["metadata"]["labels"]] and selected  # runtime pods, not the download's
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": common.HTTP_PORT, "protocol": "TCP"}] and rule["from"]
    owner = policy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("LLMServer", "np", True)

    cluster.apply_server("np", ns, **PROXY)
    cluster.wait_phase("np", "Ready", ns)
    cluster.kube.wait_for(lambda: cluster.kube.get(NETPOL, "NetworkPolicy", "np", ns) is None, 30)


def test_off_switch_writes_no_policy() -> None:
    with fake_cluster.FakeCluster(network_policy=False, apple_enabled=False) as cluster:
        cluster.apply_server("np", "ml", **CLUSTER)
        cluster.wait_phase("np", "Ready", "ml")
        assert cluster.kube.get("apps/v1", "Deployment", "np", "ml") is not None
        assert cluster.kube.list(NETPOL, "NetworkPolicy", "ml") == []
