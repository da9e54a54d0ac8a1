"""Two real gateway replicas hold requests for one cold model; the real operator's autoscaler adds
both gateways' demand into one desired count (3 held at each, targetInFlight 2 -> 3 replicas, where
either gateway alone would give 2). The runtime pods never become ready (kubelet mode `pending`), so
the requests stay held until holdSeconds ends them with 503 and Retry-After."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from testkit import fake_cluster, fake_upstreams, gateway_load

pytestmark = pytest.mark.timeout(180)

NS = "multi"
SERVICE = f"{gateway_load.GATEWAY_NS}/{gateway_load.GATEWAY}"
HOLD_SECONDS = 12
PER_GATEWAY = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster(pods="pending", gateway_service=SERVICE, autoscale_interval_seconds=0.25) as running:
        yield running


@pytest.fixture(scope="module")
def gateways(cluster: fake_cluster.FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[fake_upstreams.Proc]]:
    """Two gateway processes, each published as one endpoint of the gateway Service."""
    work: pathlib.Path = tmp_path_factory.mktemp("gateways")
    procs = [fake_upstreams.start_gateway(work, "--kubernetes", "--namespace", NS,
                                          env={"KUBECONFIG": cluster.kube.kubeconfig}, ready="/ready")
             for _ in range(2)]
    for index, proc in enumerate(procs):
        gateway_load.publish(cluster.kube, f"gateway-{index}", proc.port)
    yield procs
    fake_upstreams.stop_all(procs)


def held(gateway: fake_upstreams.Proc) -> int:
    with urllib.request.urlopen(gateway.url + "/internal/load", timeout=5) as reply:
        return json.loads(reply.read())["servers"].get(f"{NS}/wide", {}).get("held", -1)


def ask(gateway: fake_upstreams.Proc) -> int:
    """One chat request through `gateway`; the HTTP status it ends with."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    try:
        client.chat.completions.create(model="wide-m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        return 200
    except openai.APIStatusError as error:
        assert error.status_code != 503 or error.response.headers.get("retry-after"), "503 without Retry-After"
        return error.status_code
    finally:
        client.close()


def test_two_gateways_demand_adds_up_to_one_desired_count(
        cluster: fake_cluster.FakeCluster, gateways: list[fake_upstreams.Proc]) -> None:
    cluster.apply_server("wide", NS, model="wide-m", backend="llama-cpp", replicas=0,
                         source={"huggingFace": {"repo": "acme/tiny", "file": "tiny.gguf"}},
                         autoscaling={"minReplicas": 0, "maxReplicas": 5, "targetInFlight": 2, "windowSeconds": 1,
                                      "holdSeconds": HOLD_SECONDS, "scaleDownDelaySeconds": 600})
    cluster.wait_phase("wide", "Unloaded", NS, timeout=60)
    for gateway in gateways:
        cluster.kube.wait_for(lambda gateway=gateway: held(gateway) == 0, 30, "the gateway routes the cold model")

    with concurrent.futures.ThreadPoolExecutor(2 * PER_GATEWAY) as pool:
        replies = [pool.submit(ask, gateway) for gateway in gateways for _ in range(PER_GATEWAY)]
        for gateway in gateways:
            cluster.kube.wait_for(lambda gateway=gateway: held(gateway) == PER_GATEWAY, 15, "requests held at each gateway")
        cluster.kube.wait_for(lambda: (cluster.server("wide", NS) or {})["spec"].get("replicas") == 3, 15,
                              "spec.replicas follows the demand of both gateways (6 held / 2 per replica)")
        view = cluster.kube.wait_for(lambda: (cluster.status("wide", NS).get("autoscaling") or {}).get("desiredReplicas") == 3
                                     and cluster.status("wide", NS)["autoscaling"], 15, "status.autoscaling")
        assert view["averageInFlight"] > 4  # ceil(avg / 2) == 3
        statuses = [reply.result(timeout=HOLD_SECONDS + 30) for reply in replies]
    assert statuses == [503] * (2 * PER_GATEWAY)  # never ready: every held request timed out, none was lost
    assert (cluster.server("wide", NS) or {})["spec"]["replicas"] == 3  # no scale-down within the delay
