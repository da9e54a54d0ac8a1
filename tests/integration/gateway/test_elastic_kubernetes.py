"""`gateway --kubernetes` with LLMServers at 0 replicas (issue 18), against the API emulator.

An LLMServer scaled to zero (no EndpointSlice) still has a route; a request for it is held and
answered as soon as its EndpointSlice turns ready (timing printed); /internal/load reports the
demand under the server's namespace/name; a server with `fallback` is answered by it while cold and
by its own replica once that is ready.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.request

import openai
import pytest

from testkit import emulator, fake_upstreams

pytestmark = pytest.mark.timeout(180)

NS = "ml"
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
MESSAGES = [{"role": "user", "content": "hi"}]


def _server(name: str, model: str, **spec) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": NS}, "spec": {"model": model, "source": SOURCE, **spec}}


def _slice(name: str, service: str, replica: fake_upstreams.Replica) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": int(replica.url.rsplit(":", 1)[1])}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def _load(gateway: fake_upstreams.Proc) -> dict:
    with urllib.request.urlopen(gateway.url + "/internal/load", timeout=5) as reply:
        return json.loads(reply.read())["servers"]


def _until(check, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def cluster(start_fakes, run_gateway):
    replicas = start_fakes("Z1", "F1", "H1")
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        scaling = {"minReplicas": 0, "maxReplicas": 2, "holdSeconds": 60, "maxHeldRequests": 5}
        kube.create(_server("zero", "zero-chat", replicas=0, autoscaling=scaling))
        kube.create(_server("withfb", "fb-chat", replicas=0, autoscaling={**scaling, "fallback": "helper-chat"}))
        kube.create(_server("helper", "helper-chat"))
        kube.create(_slice("helper-1", "helper", replicas["H1"]))
        gateway = run_gateway("--kubernetes", "--namespace", NS, env={"KUBECONFIG": kube.kubeconfig}, ready="/ready")
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        _until(lambda: "helper-chat" in {m.id for m in client.models.list()}, what="discovery")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            yield kube, gateway, client, replicas, pool
        client.close()


def test_a_request_for_a_server_at_zero_replicas_is_held_until_its_slice_is_ready(cluster) -> None:
    kube, gateway, client, replicas, pool = cluster
    assert "zero-chat" in {m.id for m in client.models.list()}  # a route although no replica exists
    assert _load(gateway)["ml/zero"] == {"model": "zero-chat", "inFlight": 0, "held": 0, "refused": 0}

    def ask() -> tuple[str, float]:
        reply = client.chat.completions.create(model="zero-chat", messages=MESSAGES)
        return reply.choices[0].message.content, time.perf_counter()

    began = time.perf_counter()
    answer = pool.submit(ask)
    _until(lambda: _load(gateway)["ml/zero"] == {"model": "zero-chat", "inFlight": 1, "held": 1, "refused": 0}, what="held")
    time.sleep(0.3)
    assert not answer.done()
    ready_at = time.perf_counter()
    kube.create(_slice("zero-1", "zero", replicas["Z1"]))
    content, answered_at = answer.result(30)
    assert content == "Z1-0 Z1-1 Z1-2"
    print(f"\nheld {ready_at - began:.2f} s; answered {answered_at - ready_at:.3f} s after the EndpointSlice "
          "became ready (watch event + table rebuild + forward)")
    assert _load(gateway)["ml/zero"] == {"model": "zero-chat", "inFlight": 0, "held": 0, "refused": 0}


def test_the_fallback_answers_while_cold_and_the_replica_once_ready(cluster) -> None:
    kube, gateway, client, replicas, _ = cluster
    raw = client.chat.completions.with_raw_response.create(model="fb-chat", messages=MESSAGES)
    assert raw.headers["x-llmserver-served-by"] == "helper-chat"
    assert raw.parse().choices[0].message.content == "H1-0 H1-1 H1-2"
    kube.create(_slice("withfb-1", "withfb", replicas["F1"]))

    def own_replica() -> bool:
        reply = client.chat.completions.with_raw_response.create(model="fb-chat", messages=MESSAGES)
        served_by = reply.headers.get("x-llmserver-served-by")
        return served_by is None and reply.parse().choices[0].message.content.startswith("F1")

    _until(own_replica, what="traffic back on the model's own replica")
