"""Macs serving the cluster, end to end on one machine: two `llmserver agent` processes register
AppleNodes against the API emulator, the real operator places an mlx LLMServer on one of them,
that agent runs the real MLX runtime (mlx[cpu]) on a tiny model, the gateway discovers the Mac's
EndpointSlice (with the node's runtime key), and the openai SDK gets a completion. Then the
serving agent dies: its Lease expires, the operator marks the node NotReady and moves the server
to the other Mac, and the gateway follows. An API outage (every request answered 503 for several
lease durations) changes nothing a client sees: the agents keep running, the model keeps
answering, and heartbeats resume afterwards without the Mac ever being marked NotReady.

The Macs are shared by the module's tests; the test that kills an agent starts it again, so every
test finds both Macs Ready and passes alone and in any order.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import openai
import pytest
from llmserver_operator.apple import publishing
from testkit import fake_cluster, fake_upstreams, ports
from testkit.models import tiny_model_path

NS = "macs"
AGENT_NS = "llmserver-system"
pytestmark = pytest.mark.timeout(420)


def _agent(cluster: fake_cluster.FakeCluster, name: str, port_start: int, workdir: pathlib.Path) -> subprocess.Popen:
    env = {**fake_upstreams.python_env(), "KUBECONFIG": cluster.kube.kubeconfig,
           "LLMSERVER_AGENT_LOG_DIR": str(workdir / f"{name}-logs"),
           "LLMSERVER_AGENT_CACHE_DIR": str(workdir / f"{name}-cache"),
           "LLMSERVER_AGENT_MODELS_ROOT": str(workdir / "models")}
    args = [sys.executable, "-c", "from llmserver_cli.cli import main; main()", "agent",
            "--name", name, "--address", "127.0.0.1", "--bind-host", "127.0.0.1", "--memory", "16Gi",
            "--lease-seconds", "3", "--port-range-start", str(port_start)]
    log = open(workdir / f"{name}.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(30)


def _node(cluster: fake_cluster.FakeCluster, name: str) -> dict:
    return cluster.kube.get("serving.llmserver.dev/v1alpha1", "AppleNode", name, None) or {}


def _ready(node: dict) -> str | None:
    return next((c["status"] for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


def _status_grantee(cluster: fake_cluster.FakeCluster) -> str | None:
    """The ServiceAccount the operator lets patch tiny-mac's status (its Mac's own account)."""
    binding = cluster.kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", "tiny-mac-apple-agent", NS) or {}
    return next((f"{s['namespace']}/{s['name']}" for s in binding.get("subjects") or []), None)


def _completion(client: openai.OpenAI) -> str:
    response = client.completions.create(model="tiny-mlx", prompt="Hello", max_tokens=4, temperature=0)
    assert response.usage.completion_tokens > 0
    return response.choices[0].text


@dataclasses.dataclass
class Macs:
    """Two Mac agents registered with the fake cluster, and a gateway that discovers their
    endpoints; the LLMServer tiny-mac (backend mlx) is placed on one of them."""

    cluster: fake_cluster.FakeCluster
    gateway: fake_upstreams.Proc
    workdir: pathlib.Path
    port_starts: dict[str, int]  # agent name -> first port of its runtimes
    agents: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    def start_agent(self, name: str) -> None:
        """Starts (or starts again) the agent `name`."""
        self.agents[name] = _agent(self.cluster, name, self.port_starts[name], self.workdir)

    def wait_all_ready(self) -> None:
        """Blocks until every agent's AppleNode is Ready."""
        self.cluster.kube.wait_for(lambda: all(_ready(_node(self.cluster, n)) == "True" for n in self.agents), 60,
                                   "all AppleNodes Ready")

    def gateway_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def macs(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("macs")
    model = pathlib.Path(tiny_model_path("hf-causal"))
    (workdir / "models").mkdir()
    (workdir / "models" / "tiny").symlink_to(model)  # claim `tiny` on every Mac: <models root>/tiny
    with fake_cluster.FakeCluster(apple_namespace=AGENT_NS) as cluster:
        base = ports.free_port() // 100 * 100
        gateway = fake_upstreams.start_gateway(
            workdir, "--kubernetes", "--namespace", NS,
            env={"KUBECONFIG": cluster.kube.kubeconfig, "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2"})
        macs = Macs(cluster=cluster, gateway=gateway, workdir=workdir,
                    port_starts={"mac-a": 20000 + base % 20000, "mac-b": 20050 + base % 20000})
        try:
            for name in macs.port_starts:
                macs.start_agent(name)
            macs.wait_all_ready()
            cluster.apply_server("tiny-mac", NS, model="tiny-mlx", backend="mlx",
                                 source={"pvc": {"claimName": "tiny"}},
                                 resources={"memory": "1Gi"}, mlx={"maxKvSize": 256})
            yield macs
        finally:
            fake_upstreams.stop_all([gateway])
            for proc in macs.agents.values():
                _stop(proc)


def test_server_is_placed_served_and_reached_through_the_gateway(macs: Macs) -> None:
    cluster = macs.cluster
    status = cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)
    placement = status["placement"]
    assert placement["node"] in ("mac-a", "mac-b") and placement["port"]
    node = _node(cluster, placement["node"])
    assert [m["state"] for m in node["status"]["models"]] == ["Ready"]
    slice_ = cluster.kube.get("discovery.k8s.io/v1", "EndpointSlice", "tiny-mac-apple", NS)
    assert slice_["endpoints"][0]["conditions"]["ready"] is True
    service = cluster.kube.get("v1", "Service", "tiny-mac", NS)
    assert "selector" not in service["spec"]
    assert _status_grantee(cluster) == f"{AGENT_NS}/applenode-{placement['node']}"  # only its Mac reports status
    client = macs.gateway_client()
    _ = cluster.kube.wait_for(lambda: _try(lambda: _completion(client)), 60, "completion through the gateway")


def test_runtime_on_a_mac_refuses_requests_without_the_node_key(macs: Macs) -> None:
    port = macs.cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)["placement"]["port"]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        _completion(client)


def test_dead_mac_moves_the_server_and_the_gateway_follows(macs: Macs) -> None:
    cluster = macs.cluster
    first = cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)["placement"]["node"]
    other = "mac-b" if first == "mac-a" else "mac-a"
    _stop(macs.agents[first], signal.SIGKILL)  # no goodbye: only the Lease tells
    try:
        cluster.kube.wait_for(lambda: _ready(_node(cluster, first)) == "False", 60, f"{first} NotReady")
        moved = cluster.kube.wait_for(
            lambda: (cluster.status("tiny-mac", NS).get("placement") or {}).get("node") == other
            and cluster.status("tiny-mac", NS).get("phase") == "Ready", 240, "server re-placed and Ready")
        assert moved
        client = macs.gateway_client()
        assert cluster.kube.wait_for(lambda: _try(lambda: _completion(client)), 60, "completion after failover")
        assert [m["server"] for m in _node(cluster, other)["status"]["models"]] == [f"{NS}/tiny-mac"]
        assert _status_grantee(cluster) == f"{AGENT_NS}/applenode-{other}"  # the status grant moved too
    finally:
        macs.start_agent(first)
        macs.wait_all_ready()


def _lease_renewed(cluster: fake_cluster.FakeCluster, node: str) -> str | None:
    lease = cluster.kube.get("coordination.k8s.io/v1", "Lease", f"applenode-{node}", AGENT_NS) or {}
    return (lease.get("spec") or {}).get("renewTime")


def _node_key(cluster: fake_cluster.FakeCluster, node: str) -> str:
    secret = cluster.kube.get("v1", "Secret", publishing.key_secret_name(node), AGENT_NS) or {}
    if publishing.API_KEY_SECRET_KEY in (secret.get("stringData") or {}):
        return secret["stringData"][publishing.API_KEY_SECRET_KEY]
    return base64.b64decode(secret["data"][publishing.API_KEY_SECRET_KEY]).decode()


def test_api_outage_keeps_the_model_answering_and_the_mac_ready(macs: Macs) -> None:
    cluster = macs.cluster
    placement = cluster.wait_phase("tiny-mac", "Ready", NS, timeout=240)["placement"]
    node, port = placement["node"], placement["port"]
    direct = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=_node_key(cluster, node),
                           max_retries=0, timeout=60)
    outage = cluster.kube.faults.add(status=503)  # the agents', the operator's and the gateway's requests
    try:
        renewed_before = _lease_renewed(cluster, node)
        deadline = time.monotonic() + 10  # more than three lease durations (3 s)
        while time.monotonic() < deadline:
            assert _completion(direct)
            assert {name: proc.poll() for name, proc in macs.agents.items()} == dict.fromkeys(macs.agents)
            time.sleep(0.5)
        assert _lease_renewed(cluster, node) == renewed_before and outage.hits > 0
    finally:
        cluster.kube.faults.remove(outage)
    cluster.kube.wait_for(lambda: _lease_renewed(cluster, node) != renewed_before, 30, "heartbeats resume")
    for _ in range(4):  # and the operator, which saw nothing during the outage, keeps the Mac Ready
        assert _ready(_node(cluster, node)) == "True"
        time.sleep(1)
    assert (cluster.status("tiny-mac", NS).get("placement") or {}).get("node") == node
    assert [m["state"] for m in _node(cluster, node)["status"]["models"]] == ["Ready"]
    assert _completion(direct)


def _try(call):
    try:
        return call() or "ok"
    except openai.APIError:
        return None
