"""An autoscaled model on a Mac, end to end on one machine: a real `llmserver agent` (idle timer
2 s) serves an mlx LLMServer with spec.autoscaling placed by the real operator, the gateway
discovers it and the openai SDK is answered. The agent's idle timer leaves it loaded (the
autoscaler owns spec.replicas); a scale to 0 through the /scale subresource unloads the runtime
(listed Unloaded on the AppleNode, status.replicas 0); a request sent while it is cold is held by
the gateway, and the scale back to 1 (what the autoscaler does on that demand) reloads it on the
Mac and answers the held request (status.replicas 1)."""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import openai
import pytest
from testkit import emulator_client, fake_cluster, fake_upstreams, local_up, ports
from testkit.models import tiny_model_path

NS = "elastic-macs"
AGENT_NS = "llmserver-system"
LLMS = "serving.llmserver.dev/v1alpha1"
SCALE = f"/apis/{LLMS}/namespaces/{NS}/llmservers/tiny-mac/scale"
pytestmark = pytest.mark.timeout(420)


def _agent(cluster: fake_cluster.FakeCluster, workdir: pathlib.Path, port_start: int) -> subprocess.Popen:
    env = {**fake_upstreams.python_env(), "KUBECONFIG": cluster.kube.kubeconfig,
           "LLMSERVER_AGENT_LOG_DIR": str(workdir / "logs"), "LLMSERVER_AGENT_CACHE_DIR": str(workdir / "cache"),
           "LLMSERVER_AGENT_MODELS_ROOT": str(workdir / "models")}  # fmt: skip
    args = [sys.executable, "-c", "from llmserver_cli.cli import main; main()", "agent",
            "--name", "mac-z", "--address", "127.0.0.1", "--bind-host", "127.0.0.1", "--memory", "16Gi",
            "--lease-seconds", "3", "--port-range-start", str(port_start), "--idle-unload-seconds", "2"]  # fmt: skip
    log = open(workdir / "agent.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _models(cluster: fake_cluster.FakeCluster) -> list[dict]:
    node = cluster.kube.get(LLMS, "AppleNode", "mac-z", None) or {}
    return (node.get("status") or {}).get("models") or []


def _state(cluster: fake_cluster.FakeCluster) -> str | None:
    return next((m["state"] for m in _models(cluster) if m["server"] == f"{NS}/tiny-mac"), None)


def _scale(cluster: fake_cluster.FakeCluster, replicas: int) -> None:
    answer = emulator_client.call(cluster.kube, "PATCH", SCALE, {"spec": {"replicas": replicas}},
                                  "application/merge-patch+json")  # fmt: skip
    assert answer.code == 200, answer.body


def _completion(client: openai.OpenAI) -> str:
    response = client.completions.create(model="tiny-mlx", prompt="Hello", max_tokens=4, temperature=0)
    assert response.usage is not None and response.usage.completion_tokens > 0
    return response.choices[0].text


@pytest.fixture(scope="module")
def mac(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[fake_cluster.FakeCluster, fake_upstreams.Proc, subprocess.Popen]]:
    workdir = tmp_path_factory.mktemp("elastic-mac")
    (workdir / "models").mkdir()
    (workdir / "models" / "tiny").symlink_to(pathlib.Path(tiny_model_path("hf-causal")))
    with fake_cluster.FakeCluster(apple_namespace=AGENT_NS) as cluster:
        gateway = fake_upstreams.start_gateway(
            workdir, "--kubernetes", "--namespace", NS,
            env={"KUBECONFIG": cluster.kube.kubeconfig, "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2"})
        agent = _agent(cluster, workdir, 21000 + ports.free_port() % 20000)
        try:
            cluster.apply_server("tiny-mac", NS, model="tiny-mlx", backend="mlx", source={"pvc": {"claimName": "tiny"}},
                                 resources={"memory": "1Gi"}, mlx={"maxKvSize": 256},
                                 autoscaling={"minReplicas": 0, "maxReplicas": 1, "scaleDownDelaySeconds": 600,
                                              "holdSeconds": 240})  # fmt: skip
            yield cluster, gateway, agent
        finally:
            fake_upstreams.stop_all([gateway])
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGTERM)
                agent.wait(30)


def test_a_mac_model_scaled_to_zero_is_unloaded_and_a_held_request_is_answered_after_reload(
    mac: tuple[fake_cluster.FakeCluster, fake_upstreams.Proc, subprocess.Popen],
) -> None:
    cluster, gateway, agent = mac
    cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)
    assert _runtimes(agent.pid) == 1
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=240)
    cluster.kube.wait_for(lambda: status_replicas(cluster) == 1, 30, "status.replicas 1")
    cluster.kube.wait_for(lambda: _try(lambda: _completion(client)), 60, "completion through the gateway")
    time.sleep(6)  # three idle timeouts of the agent: an autoscaled model is not its to unload
    assert _state(cluster) == "Ready"

    _scale(cluster, 0)
    cluster.kube.wait_for(lambda: _state(cluster) == "Unloaded", 60, "runtime unloaded on the Mac")
    cluster.kube.wait_for(lambda: status_replicas(cluster) == 0, 30, "status.replicas 0")
    # reported Unloaded from the moment it is routed away (Unloading); the process then stops
    cluster.kube.wait_for(lambda: _runtimes(agent.pid) == 0, 30, "the runtime process gone")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        held = pool.submit(_completion, client)  # no ready replica: the gateway holds it
        time.sleep(2)
        assert not held.done(), "the request for a cold model must be held, not refused"
        _scale(cluster, 1)  # the autoscaler's answer to that demand
        assert isinstance(held.result(timeout=240), str)
        print(f"held request on a cold Mac model answered after {time.monotonic() - began:.1f}s")
    assert _state(cluster) == "Ready" and _runtimes(agent.pid) == 1
    cluster.kube.wait_for(lambda: status_replicas(cluster) == 1, 30, "status.replicas 1 again")


def status_replicas(cluster: fake_cluster.FakeCluster) -> int | None:
    return cluster.status("tiny-mac", NS).get("replicas")


def _runtimes(agent_pid: int) -> int:
    """How many runtime processes the agent has running now."""
    count = 0
    for pid in local_up.descendants(agent_pid):
        try:
            command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        count += b"llmserver_runtime" in command
    return count


def _try(call: Callable[[], str]) -> str | None:
    try:
        return call() or "ok"
    except openai.APIError:
        return None
