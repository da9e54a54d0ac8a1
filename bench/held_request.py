"""Held-request benchmark: what the gateway adds to a request for a cold model, over the moment its
replica became ready.

    ~/.cache/llmserver/venv/bin/python bench/held_request.py [--rounds 7]

A real gateway process discovers an LLMServer with `spec.autoscaling` (holdSeconds 60) and its
EndpointSlice from the API emulator, as in a cluster. Each round: the slice is not ready (the
model is cold), a chat request is sent and held; after a pause a fake replica is marked ready (the
EndpointSlice write is what the kubelet does when the replica's /ready passes), and the request is
answered. Added latency = (answer time - ready time) - the same request's time on a warm model,
measured in the same run. The warm time is taken right before each round (noise cancels).
Loopback only; every process is started here and stopped at the end.

The last line is `held_added_ms=X ready_to_answer_ms=Y warm_ms=Z` (medians over the rounds).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import openai  # noqa: E402

from testkit import emulator, fake_upstreams  # noqa: E402

NS = "bench"
MODEL = "cold-model"
PAUSE_SECONDS = 0.5  # how long the request is held before the replica turns ready


def _server() -> dict:
    return {
        "apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
        "metadata": {"name": "cold", "namespace": NS},
        "spec": {"model": MODEL, "replicas": 0, "source": {"huggingFace": {"repo": "acme/tiny-GGUF"}},
                 "autoscaling": {"minReplicas": 0, "maxReplicas": 1, "holdSeconds": 60}},
    }  # fmt: skip


def _slice(port: int, ready: bool) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "cold-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "cold"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }  # fmt: skip


def _set_ready(kube: emulator.KubeEmulator, port: int, ready: bool) -> None:
    kube.patch("discovery.k8s.io/v1", "EndpointSlice", "cold-1", {"endpoints": _slice(port, ready)["endpoints"]}, NS)


def _chat(client: openai.OpenAI) -> float:
    """Seconds for one non-streamed chat request."""
    started = time.perf_counter()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    return time.perf_counter() - started


def _wait_cold(gateway: fake_upstreams.Proc) -> None:
    """Until the gateway has seen the slice go unready (its ready-endpoint gauge drops to 0)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as reply:
            text = reply.read().decode()
        if f'llmserver_gateway_ready_endpoints{{model="{MODEL}"}} 0.0' in text:
            return
        time.sleep(0.02)
    raise TimeoutError("the gateway never saw the model cold")


def _held_round(kube: emulator.KubeEmulator, client: openai.OpenAI, gateway: fake_upstreams.Proc,
                port: int) -> tuple[float, float]:
    """(seconds from ready to answer, seconds of a warm request) for one round."""
    warm = statistics.median(_chat(client) for _ in range(5))
    _set_ready(kube, port, False)
    _wait_cold(gateway)
    done: dict[str, float] = {}

    def held() -> None:
        _chat(client)
        done["at"] = time.perf_counter()

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(PAUSE_SECONDS)
    if "at" in done:
        raise RuntimeError("the request was answered while the model was cold: it was not held")
    ready_at = time.perf_counter()
    _set_ready(kube, port, True)
    thread.join(60)
    return done["at"] - ready_at, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        work = pathlib.Path(tmp)
        replica = fake_upstreams.start_fake(work, "R")
        gateway = fake_upstreams.start_gateway(work, "--kubernetes", "--namespace", NS,
                                               env={"KUBECONFIG": kube.kubeconfig}, ready="/ready")
        try:
            kube.create(_server())
            kube.create(_slice(replica.port, True))
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0, timeout=90)
            deadline = time.monotonic() + 30
            while True:  # until the gateway routes the model
                try:
                    _chat(client)
                    break
                except openai.APIError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            rounds = [_held_round(kube, client, gateway, replica.port) for _ in range(args.rounds)]
        finally:
            fake_upstreams.stop_all([gateway, replica])
    to_answer = [answer for answer, _ in rounds]
    warm = [w for _, w in rounds]
    added = [answer - w for answer, w in rounds]
    for index, (answer, w) in enumerate(rounds, 1):
        print(f"round {index}: ready_to_answer_ms={answer * 1000:.1f} warm_ms={w * 1000:.1f}")
    print(f"held_added_ms={statistics.median(added) * 1000:.2f} "
          f"ready_to_answer_ms={statistics.median(to_answer) * 1000:.2f} warm_ms={statistics.median(warm) * 1000:.2f}")


if __name__ == "__main__":
    main()
