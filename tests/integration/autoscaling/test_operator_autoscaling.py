"""The real operator (kopf) autoscales against the API emulator and the kubelet simulator, reading two
stand-in gateway replicas' /internal/load (testkit.gateway_load) found through the gateway Service's
EndpointSlices: a burst scales up to maxReplicas at once through the scale subresource, an idle
period scales down to minReplicas only after scaleDownDelaySeconds, minReplicas 0 scales to zero
(phase Unloaded) and a held request brings a replica back; Events, status.autoscaling and the
operator's /metrics show each decision. Delays are seconds; every wait is bounded."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import prometheus_client.parser
import pytest
from testkit import fake_cluster, gateway_load, ports

pytestmark = pytest.mark.timeout(180)

Cluster = fake_cluster.FakeCluster
SERVICE = f"{gateway_load.GATEWAY_NS}/{gateway_load.GATEWAY}"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return ports.free_port()


@pytest.fixture(scope="module")
def cluster(metrics_port: int) -> Iterator[Cluster]:
    with fake_cluster.FakeCluster(gateway_service=SERVICE, autoscale_interval_seconds=0.25,
                                  autoscale_timeout_seconds=0.5, metrics_port=metrics_port,
                                  metrics_address="127.0.0.1") as running:
        yield running


@pytest.fixture
def gateways(cluster: Cluster, load_servers: gateway_load.LoadServers,
             ns: str) -> Iterator[tuple[gateway_load.LoadServer, gateway_load.LoadServer]]:
    """Two gateway replicas published for this test (removed afterwards)."""
    first, second = load_servers.start(), load_servers.start()
    names = [f"{ns[:50].rstrip('-')}-{suffix}" for suffix in ("a", "b")]
    for name, replica in zip(names, (first, second), strict=True):
        gateway_load.publish(cluster.kube, name, replica.port)
    yield first, second
    for name in names:
        cluster.kube.delete("discovery.k8s.io/v1", "EndpointSlice", name, gateway_load.GATEWAY_NS)


def gguf(name: str, **autoscaling: Any) -> dict[str, Any]:
    return {"model": name, "backend": "llama-cpp",
            "source": {"huggingFace": {"repo": "acme/tiny-gguf", "file": "m.gguf"}},
            "autoscaling": autoscaling}


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the autoscaler's Events about the server, oldest first."""
    found = [e for e in cluster.kube.list("v1", "Event", ns) if (e.get("involvedObject") or {}).get("name") == name
             and e.get("reason") in ("ScaledUp", "ScaledDown")]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["reason"], e["message"]) for e in found]


def spec_replicas(cluster: Cluster, ns: str, name: str) -> int | None:
    return ((cluster.server(name, ns) or {}).get("spec") or {}).get("replicas")


def running(cluster: Cluster, ns: str, name: str, replicas: int) -> bool:
    """The Deployment wants `replicas` and the server's status observes that many ready."""
    deployment = cluster.kube.get("apps/v1", "Deployment", name, ns) or {}
    status = cluster.status(name, ns)
    return ((deployment.get("spec") or {}).get("replicas") == replicas and status.get("replicas") == replicas
            and status.get("readyReplicas", 0) == replicas)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in prometheus_client.parser.text_string_to_metric_families(text) for s in family.samples}


def test_a_burst_scales_up_at_once_and_idle_scales_down_after_the_delay(
        cluster: Cluster, ns: str, metrics_port: int,
        gateways: tuple[gateway_load.LoadServer, gateway_load.LoadServer]) -> None:
    first, second = gateways
    cluster.apply_server("chat", ns, **gguf("chat", minReplicas=1, maxReplicas=3, targetInFlight=2,
                                            windowSeconds=1, scaleDownDelaySeconds=3))
    cluster.wait_phase("chat", "Ready", ns)
    since = len(cluster.kube.requests)
    first.set(f"{ns}/chat", 4)
    second.set(f"{ns}/chat", 5)  # 9 in flight over two gateways: ceil(9 / 2) = 5, clamped to 3
    burst = time.monotonic()
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "chat") == 3, 10, "scaled up to maxReplicas")
    up_seconds = time.monotonic() - burst
    cluster.kube.wait_for(lambda: running(cluster, ns, "chat", 3), 30, "three replicas running")
    # up at once each round; the 1 s window's average still holds the idle rounds before the burst,
    # so the way up may take a step through 2
    ups = events(cluster, ns, "chat")
    assert {reason for reason, _ in ups} == {"ScaledUp"} and len(ups) <= 2, ups
    assert ups[0][1].startswith("replicas 1 -> ") and ups[-1][1].endswith("target 2 per replica")
    assert cluster.kube.calls(since)[("patch", "LLMServer/scale")] == len(ups)  # through the scale subresource
    view = cluster.status("chat", ns)["autoscaling"]
    assert view["desiredReplicas"] == 3 and view["averageInFlight"] >= 4 and "lastScaleTime" in view
    assert "target 2 per replica" in view["lastDecision"]
    samples = scrape(metrics_port)
    labels = (("name", "chat"), ("namespace", ns))
    assert samples[("llmserver_operator_autoscaler_desired_replicas", labels)] == 3
    assert samples[("llmserver_operator_autoscaler_in_flight", labels)] == 9  # both gateways, summed
    assert samples[("llmserver_operator_autoscaler_decisions_total", (("direction", "up"), *labels))] == len(ups)

    first.set(f"{ns}/chat", 0)
    second.set(f"{ns}/chat", 0)
    idle = time.monotonic()
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "chat") == 1, 20, "scaled down to minReplicas")
    down_seconds = time.monotonic() - idle
    assert down_seconds >= 3  # not before scaleDownDelaySeconds of lower desire
    cluster.kube.wait_for(lambda: running(cluster, ns, "chat", 1), 30, "one replica running")
    # the window's average falls over a second, so the way down may take a step through 2 (each
    # step to the highest desire of the last 3 s); the first step came only after the delay
    reasons = [reason for reason, _ in events(cluster, ns, "chat")][len(ups):]
    assert set(reasons) == {"ScaledDown"} and len(reasons) <= 2, reasons
    assert cluster.status("chat", ns)["autoscaling"]["desiredReplicas"] == 1
    assert "desired stayed at or below 1 for 3s" in cluster.status("chat", ns)["autoscaling"]["lastDecision"]
    samples = scrape(metrics_port)
    assert samples[("llmserver_operator_autoscaler_decisions_total", (("direction", "down"), *labels))] == len(reasons)
    print(f"\nscale-up {up_seconds:.2f}s after the burst; scale-down {down_seconds:.2f}s after it ended (delay 3s)")

    before = len(cluster.kube.requests)
    time.sleep(1.5)  # steady and idle at minReplicas: the autoscaler writes nothing
    assert [w for w in cluster.kube.writes(before) if "/llmservers/" in w.path] == []


def test_min_zero_scales_to_zero_and_a_held_request_brings_a_replica_back(
        cluster: Cluster, ns: str, gateways: tuple[gateway_load.LoadServer, gateway_load.LoadServer]) -> None:
    first, second = gateways
    cluster.apply_server("cold", ns, **gguf("cold", minReplicas=0, maxReplicas=2, targetInFlight=4,
                                            windowSeconds=1, scaleDownDelaySeconds=2))
    created = time.monotonic()
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "cold") == 0, 15, "scaled to zero when idle")
    assert time.monotonic() - created >= 2  # no request at all, still a full delay first
    cluster.wait_phase("cold", "Unloaded", ns)
    assert [reason for reason, _ in events(cluster, ns, "cold")] == ["ScaledDown"]

    second.set(f"{ns}/cold", 1, held=1)  # a request held at one gateway while no replica runs
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "cold") == 1, 5, "scaled from zero")
    cluster.wait_phase("cold", "Ready", ns)
    reason, message = events(cluster, ns, "cold")[-1]
    assert reason == "ScaledUp" and message.startswith("replicas 0 -> 1") and "1 held" in message


def test_a_request_refused_while_cold_still_brings_a_replica(
        cluster: Cluster, ns: str, gateways: tuple[gateway_load.LoadServer, gateway_load.LoadServer]) -> None:
    first, _ = gateways
    cluster.apply_server("nohold", ns, **gguf("nohold", minReplicas=0, maxReplicas=2, holdSeconds=0,
                                              scaleDownDelaySeconds=1))
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "nohold") == 0, 15, "scaled to zero when idle")
    first.set(f"{ns}/nohold", 0, refused=1)  # holdSeconds 0: the client got its 503, nothing is in flight
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "nohold") == 1, 5, "scaled from zero")
    cluster.kube.wait_for(lambda: events(cluster, ns, "nohold")[-1][0] == "ScaledUp", 5, "the ScaledUp event")
    assert "1 refused lately" in events(cluster, ns, "nohold")[-1][1]


def test_a_server_without_autoscaling_is_left_alone_and_bounds_are_enforced(
        cluster: Cluster, ns: str, gateways: tuple[gateway_load.LoadServer, gateway_load.LoadServer]) -> None:
    first, _ = gateways
    first.set(f"{ns}/plain", 100)
    cluster.apply_server("plain", ns, model="plain", backend="llama-cpp", replicas=1,
                         source={"huggingFace": {"repo": "acme/tiny-gguf", "file": "m.gguf"}})
    cluster.apply_server("bounded", ns, replicas=5, **gguf("bounded", minReplicas=1, maxReplicas=2))
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "bounded") == 2, 10, "clamped to maxReplicas")
    cluster.wait_phase("plain", "Ready", ns)
    time.sleep(1)
    assert spec_replicas(cluster, ns, "plain") == 1 and "autoscaling" not in cluster.status("plain", ns)


def test_removing_the_block_hands_replicas_back_and_clears_the_view(
        cluster: Cluster, ns: str, metrics_port: int,
        gateways: tuple[gateway_load.LoadServer, gateway_load.LoadServer]) -> None:
    first, _ = gateways
    first.set(f"{ns}/owned", 3)
    cluster.apply_server("owned", ns, **gguf("owned", minReplicas=1, maxReplicas=4, targetInFlight=1))
    cluster.kube.wait_for(lambda: spec_replicas(cluster, ns, "owned") == 3, 10, "autoscaled")
    cluster.kube.wait_for(lambda: cluster.status("owned", ns).get("autoscaling"), 10, "status.autoscaling")
    plain = {key: value for key, value in gguf("owned").items() if key != "autoscaling"}
    cluster.apply_server("owned", ns, replicas=2, **plain)  # what `llmserver unload-model` also does to the block
    cluster.kube.wait_for(lambda: "autoscaling" not in cluster.status("owned", ns), 10, "status.autoscaling cleared")
    first.set(f"{ns}/owned", 40)
    time.sleep(1.5)  # several rounds with demand: nobody scales it any more
    assert spec_replicas(cluster, ns, "owned") == 2
    assert not [key for key in scrape(metrics_port) if key[0].startswith("llmserver_operator_autoscaler_")
                and ("name", "owned") in key[1]]  # its series went with the block
