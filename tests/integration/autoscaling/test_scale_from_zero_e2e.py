"""Scale from zero end to end, on one machine: OpenAI client → real gateway (`--kubernetes`) → held →
real operator's autoscaler reads the gateway's /internal/load → scale subresource 0 → 1 → the
kubelet simulator runs the runtime pod as a process (llama.cpp, tiny GGUF) → ready EndpointSlice →
the gateway forwards the held request → answered. The timing of each step is printed."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import time
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from testkit import fake_cluster, fake_upstreams, gateway_load, models

pytestmark = pytest.mark.timeout(300)

NS = "cold"
SERVICE = f"{gateway_load.GATEWAY_NS}/{gateway_load.GATEWAY}"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("models")
    target = root / "hf" / "acme" / "tiny" / "main"
    target.mkdir(parents=True)
    os.symlink(models.tiny_model_path("gguf"), target / "tiny.gguf")
    return root


@pytest.fixture(scope="module")
def cluster(models_dir: pathlib.Path) -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster(models_dir=str(models_dir), pods="process", gateway_service=SERVICE,
                                  autoscale_interval_seconds=0.25) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(cluster: fake_cluster.FakeCluster,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[fake_upstreams.Proc]:
    """The real gateway, published as the one ready endpoint of the gateway Service."""
    proc = fake_upstreams.start_gateway(tmp_path_factory.mktemp("gateway"), "--kubernetes", "--namespace", NS,
                                        env={"KUBECONFIG": cluster.kube.kubeconfig,
                                             "LLMSERVER_GATEWAY_READ_TIMEOUT": "60"},
                                        ready="/ready")
    gateway_load.publish(cluster.kube, "gateway-0", proc.port)
    yield proc
    fake_upstreams.stop_all([proc])


def load(gateway: fake_upstreams.Proc) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(gateway.url + "/internal/load", timeout=5) as reply:
        return json.loads(reply.read())["servers"]


def test_a_request_to_a_model_at_zero_replicas_is_held_scaled_for_and_answered(
        cluster: fake_cluster.FakeCluster, gateway: fake_upstreams.Proc) -> None:
    cluster.apply_server("tiny", NS, model="tiny-cold", backend="llama-cpp", llamaCpp={"nCtx": 256}, replicas=0,
                         source={"huggingFace": {"repo": "acme/tiny", "file": "tiny.gguf"}},
                         autoscaling={"minReplicas": 0, "maxReplicas": 1, "holdSeconds": 120, "windowSeconds": 5,
                                      "scaleDownDelaySeconds": 600})
    cluster.wait_phase("tiny", "Unloaded", NS, timeout=60)
    cluster.kube.wait_for(lambda: f"{NS}/tiny" in load(gateway), 30, "the gateway routes the cold model")
    assert cluster.kubelet is not None and not cluster.kubelet.processes  # nothing runs

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=180)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sent = time.monotonic()
        reply = pool.submit(client.chat.completions.create, model="tiny-cold", max_tokens=4,
                            messages=[{"role": "user", "content": "hi"}])
        cluster.kube.wait_for(lambda: load(gateway).get(f"{NS}/tiny", {}).get("held") == 1, 10, "the request held")
        held = time.monotonic() - sent
        cluster.kube.wait_for(lambda: (cluster.server("tiny", NS) or {})["spec"].get("replicas") == 1, 10,
                              "the autoscaler scaled from zero")
        scaled = time.monotonic() - sent
        assert not reply.done()  # still held: no replica is ready yet
        cluster.wait_phase("tiny", "Ready", NS, timeout=120)
        ready = time.monotonic() - sent
        answer = reply.result(timeout=120)
        answered = time.monotonic() - sent
    assert answer.model == "tiny-cold" and answer.choices[0].message.content is not None
    view = cluster.status("tiny", NS)["autoscaling"]
    assert view["desiredReplicas"] == 1 and "1 held" in view["lastDecision"]
    print(f"\nscale from zero: held after {held:.2f}s, spec.replicas 0 -> 1 after {scaled:.2f}s, "
          f"Ready after {ready:.2f}s, answered after {answered:.2f}s "
          f"(answer {answered - ready:+.2f}s after Ready)")
