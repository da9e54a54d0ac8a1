"""Only the leader autoscales: two operator processes (`python -m llmserver_operator`, leader election
on, the gateway Service set) against the API emulator and one stand-in gateway replica. The replica
holding the Lease reads the gateway and writes /scale; the waiting one sends nothing but Lease
requests; once the leader dies, the new leader scales on the next change of demand.

Each process authenticates with its own token, so every request is attributed to its sender.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from testkit import emulator, emulator_http, fake_upstreams, gateway_load

pytestmark = pytest.mark.timeout(180)
LLMS = "serving.llmserver.dev/v1alpha1"
LEASE_NS = "llmserver-system"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/llmserver-operator"
Seen = list[tuple[str, str, str]]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[emulator.KubeEmulator, Seen]]:
    """The emulator, and (token, method, path) of every request it serves."""
    seen: Seen = []
    original = emulator_http.Api.handle

    async def handle(self: emulator_http.Api, request: Any) -> Any:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        seen.append((token, request.method, request.path))
        return await original(self, request)

    monkeypatch.setattr(emulator_http.Api, "handle", handle)
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        yield kube, seen


def start_operator(kube: emulator.KubeEmulator, identity: str, workdir: pathlib.Path) -> subprocess.Popen[bytes]:
    config = yaml.safe_load(pathlib.Path(kube.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = identity
    kubeconfig = workdir / f"{identity}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = fake_upstreams.python_env(
        LLMSERVER_OPERATOR_KUBECONFIG=str(kubeconfig), LLMSERVER_OPERATOR_APPLE_ENABLED="false",
        LLMSERVER_OPERATOR_METRICS_PORT="0", LLMSERVER_OPERATOR_RETRY_DELAY_SECONDS="0.5",
        LLMSERVER_OPERATOR_GATEWAY_SERVICE=f"{gateway_load.GATEWAY_NS}/{gateway_load.GATEWAY}",
        LLMSERVER_OPERATOR_AUTOSCALE_INTERVAL_SECONDS="0.25",
        LLMSERVER_OPERATOR_LEADER_ELECTION="true", LLMSERVER_OPERATOR_LEADER_ELECTION_NAMESPACE=LEASE_NS,
        LLMSERVER_OPERATOR_LEADER_ELECTION_IDENTITY=identity, LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_SECONDS="3",
        LLMSERVER_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE_SECONDS="2",
        LLMSERVER_OPERATOR_LEADER_ELECTION_RETRY_SECONDS="0.5")
    return subprocess.Popen([sys.executable, "-m", "llmserver_operator"], env=env, start_new_session=True,
                            stdout=(workdir / f"{identity}.log").open("ab"), stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)


def holder(kube: emulator.KubeEmulator) -> str | None:
    lease = kube.get("coordination.k8s.io/v1", "Lease", "llmserver-operator", LEASE_NS) or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def replicas(kube: emulator.KubeEmulator) -> int | None:
    return ((kube.get(LLMS, "LLMServer", "auto", "ml") or {}).get("spec") or {}).get("replicas")


def test_only_the_leader_reads_the_gateway_and_scales(world: tuple[emulator.KubeEmulator, Seen], tmp_path: pathlib.Path,
                                                      load_servers: gateway_load.LoadServers) -> None:
    kube, seen = world
    replica = load_servers.start()
    gateway_load.publish(kube, "gateway-0", replica.port)
    replica.set("ml/auto", 3)
    kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "auto", "namespace": "ml"},
                 "spec": {"model": "auto", "backend": "llama-cpp", "replicas": 1,
                          "source": {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}},
                          "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetInFlight": 1}}})
    a = start_operator(kube, "op-a", tmp_path)
    b = None
    try:
        kube.wait_for(lambda: holder(kube) == "op-a", 60, "op-a holds the lease")
        b = start_operator(kube, "op-b", tmp_path)
        kube.wait_for(lambda: any(token == "op-b" for token, _, _ in list(seen)), 60, "op-b is a candidate")
        kube.wait_for(lambda: replicas(kube) == 3, 30, "scaled by the leader")
        asked = replica.asked
        kube.wait_for(lambda: replica.asked > asked + 4, 10, "the leader keeps reading the gateway")
        scalers = {token for token, method, path in list(seen) if path.endswith("/llmservers/auto/scale")}
        assert scalers == {"op-a"}
        assert {path for token, _, path in list(seen) if token == "op-b"} == {LEASE_PATH}, \
            "a waiting replica touches nothing but the Lease"

        kill(a)
        kube.wait_for(lambda: holder(kube) == "op-b", 30, "op-b takes the lease")
        replica.set("ml/auto", 4)
        kube.wait_for(lambda: replicas(kube) == 4, 30, "scaled by the new leader")
        assert [token for token, method, path in list(seen) if path.endswith("/llmservers/auto/scale")][-1] == "op-b"
    finally:
        for proc in (a, b):
            if proc is not None:
                kill(proc)
