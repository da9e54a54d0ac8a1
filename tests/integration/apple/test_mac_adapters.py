"""status.adapters of a Mac-placed server, end to end on one machine: the real operator places an
mlx LLMServer with two adapters on a real `llmserver agent`, which runs the real MLX runtime on a
tiny model. The adapter on the models root (an mlx-lm LoRA made for the tiny model) is served
(`Ready`, readyReplicas 1, answered through the gateway as `tiny-mlx:good`); the one from a URL whose
sha256 is wrong is `Failed` with the downloader's message and the model serves without it. The
operator's own status writes (phase, replicas) never wipe the agent's list: scaled to 0 the
adapters say no replica serves them, scaled back they are Ready again, and a list someone
overwrote is written back by the agent. An adapter the runtime refuses at load (a folder with no
adapter config) is `Failed` with the runtime's message."""

from __future__ import annotations

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from testkit import emulator_client, fake_cluster, fake_upstreams, file_server, lora_adapters, ports
from testkit.models import tiny_model_path

NS = "mac-adapters"
AGENT_NS = "llmserver-system"
LLMS = "serving.llmserver.dev/v1alpha1"
pytestmark = pytest.mark.timeout(420)
BROKEN = b"not the file the checksum names"


def _agent(cluster: fake_cluster.FakeCluster, workdir: pathlib.Path, port_start: int) -> subprocess.Popen:
    env = {**fake_upstreams.python_env(), "KUBECONFIG": cluster.kube.kubeconfig,
           "LLMSERVER_AGENT_LOG_DIR": str(workdir / "logs"), "LLMSERVER_AGENT_CACHE_DIR": str(workdir / "cache"),
           "LLMSERVER_AGENT_MODELS_ROOT": str(workdir / "models")}  # fmt: skip
    args = [sys.executable, "-c", "from llmserver_cli.cli import main; main()", "agent",
            "--name", "mac-l", "--address", "127.0.0.1", "--bind-host", "127.0.0.1", "--memory", "16Gi",
            "--lease-seconds", "3", "--port-range-start", str(port_start)]  # fmt: skip
    log = open(workdir / "agent.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _spec(files: file_server.FileServer, replicas: int = 1, extra: list[dict[str, Any]] | None = None) -> dict:
    wrong = hashlib.sha256(b"what the mirror should have served").hexdigest()
    adapters = [{"name": "good", "source": {"pvc": {"claimName": "loras", "path": "good"}}},
                {"name": "broken", "source": {"url": {"url": f"{files.url}/broken.safetensors", "sha256": wrong}}},
                *(extra or [])]
    return {"model": "tiny-mlx", "backend": "mlx", "source": {"pvc": {"claimName": "tiny"}}, "replicas": replicas,
            "resources": {"memory": "1Gi"}, "mlx": {"maxKvSize": 256}, "adapters": adapters}


def _adapters(cluster: fake_cluster.FakeCluster) -> dict[str, dict]:
    return {e["name"]: e for e in cluster.status("tiny-mac", NS).get("adapters") or []}


def _events(cluster: fake_cluster.FakeCluster) -> list[tuple[str, str]]:
    """(reason, message) of the adapter Events about the server."""
    return [(e["reason"], e["message"]) for e in cluster.kube.list("v1", "Event", NS)
            if (e.get("involvedObject") or {}).get("name") == "tiny-mac"
            and e.get("reason") in ("AdapterReady", "AdapterFailed")]


def _phases(cluster: fake_cluster.FakeCluster) -> dict[str, tuple[str, int]]:
    return {name: (e["phase"], e["readyReplicas"]) for name, e in _adapters(cluster).items()}


@pytest.fixture(scope="module")
def mac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[fake_cluster.FakeCluster, fake_upstreams.Proc,
                                                                     file_server.FileServer, pathlib.Path]]:
    workdir = tmp_path_factory.mktemp("mac-adapters")
    model = tiny_model_path("hf-causal")
    (workdir / "models").mkdir()
    (workdir / "models" / "tiny").symlink_to(pathlib.Path(model))
    lora_adapters.mlx_lora(model, workdir / "models" / "loras" / "good", seed=1)
    (workdir / "models" / "loras" / "empty").mkdir()
    with file_server.FileServer({"broken.safetensors": BROKEN}) as files, \
            fake_cluster.FakeCluster(apple_namespace=AGENT_NS) as cluster:
        gateway = fake_upstreams.start_gateway(
            workdir, "--kubernetes", "--namespace", NS,
            env={"KUBECONFIG": cluster.kube.kubeconfig, "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2"})
        agent = _agent(cluster, workdir, 22000 + ports.free_port() % 20000)
        try:
            cluster.apply_server("tiny-mac", NS, **_spec(files))
            yield cluster, gateway, files, workdir
        finally:
            fake_upstreams.stop_all([gateway])
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGTERM)
                agent.wait(30)


def test_mac_adapters_are_reported_in_status(
    mac: tuple[fake_cluster.FakeCluster, fake_upstreams.Proc, file_server.FileServer, pathlib.Path],
) -> None:
    cluster, gateway, files, workdir = mac
    cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)  # the failed adapter never holds the model back
    cluster.kube.wait_for(lambda: _phases(cluster) == {"good": ("Ready", 1), "broken": ("Failed", 0)}, 60,
                          "good Ready on the Mac, broken Failed")
    broken = _adapters(cluster)["broken"]
    assert broken["message"].startswith("download failed") and "sha256" in broken["message"].lower(), broken
    assert _adapters(cluster)["good"]["message"] == "served by the runtime on AppleNode 'mac-l'"
    # The operator posts the Events of what the agent wrote, as it does for cluster servers.
    cluster.kube.wait_for(lambda: {r for r, _ in _events(cluster)} == {"AdapterReady", "AdapterFailed"}, 30,
                          "AdapterReady and AdapterFailed Events")
    assert ("AdapterReady", "adapter 'good': served by the runtime on AppleNode 'mac-l'") in _events(cluster)
    assert ("AdapterFailed", f"adapter 'broken': {broken['message']}") in _events(cluster)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=2, timeout=60)
    answer = client.completions.create(model="tiny-mlx:good", prompt="Hello", max_tokens=4, temperature=0)
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    # The operator rewrites phase and replicas on the way to 0 and back: the agent's list stays true.
    cluster.apply_server("tiny-mac", NS, **_spec(files, replicas=0))
    cluster.wait_phase("tiny-mac", "Unloaded", NS, timeout=60)
    cluster.kube.wait_for(lambda: _phases(cluster) == {"good": ("Pending", 0), "broken": ("Failed", 0)}, 60,
                          "no replica serves the adapters at replicas 0")
    cluster.apply_server("tiny-mac", NS, **_spec(files))
    cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)
    cluster.kube.wait_for(lambda: _phases(cluster) == {"good": ("Ready", 1), "broken": ("Failed", 0)}, 60,
                          "good Ready again")
    assert cluster.status("tiny-mac", NS)["readyReplicas"] == 1

    # A list someone else replaced (a merge patch replaces it whole) is written back by the agent.
    wiped = emulator_client.call(cluster.kube, "PATCH", f"/apis/{LLMS}/namespaces/{NS}/llmservers/tiny-mac/status",
                                 {"status": {"adapters": []}}, "application/merge-patch+json")
    assert wiped.code == 200 and _adapters(cluster) == {}, wiped.body
    cluster.kube.wait_for(lambda: _phases(cluster) == {"good": ("Ready", 1), "broken": ("Failed", 0)}, 30,
                          "the agent restored status.adapters")

    # An adapter the runtime refuses at load: mlx takes adapters at start and exits on it.
    empty = {"name": "empty", "source": {"pvc": {"claimName": "loras", "path": "empty"}}}
    cluster.apply_server("tiny-mac", NS, **_spec(files, extra=[empty]))
    cluster.kube.wait_for(lambda: _phases(cluster).get("empty", ("", 0))[0] == "Failed", 240,
                          "the refused adapter Failed")
    entries = _adapters(cluster)
    assert "adapter_config.json" in entries["empty"]["message"], entries["empty"]
    cluster.kube.wait_for(lambda: any(r == "AdapterFailed" and "'empty'" in m for r, m in _events(cluster)), 30,
                          "the AdapterFailed Event of the refused adapter")
    assert (entries["good"]["phase"], entries["good"]["readyReplicas"]) == ("Pending", 0)
    assert entries["broken"]["phase"] == "Failed"
