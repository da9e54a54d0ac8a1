"""Several operator processes (`python -m llmserver_operator`, leader election on) against the API
emulator: exactly one reconciles; when it dies the other takes over within the lease duration;
when it is stopped it hands the Lease over at once.

Each process authenticates with its own token, so every request the emulator receives is
attributed to the process that sent it.
"""

from __future__ import annotations

import collections
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testkit import emulator, emulator_http, fake_upstreams, ports

pytestmark = pytest.mark.timeout(240)
LLMS = "serving.llmserver.dev/v1alpha1"
LEASE_NS = "llmserver-system"
LEASE_SECONDS = 3
RETRY_SECONDS = 0.5


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[emulator.KubeEmulator, list[tuple[str, str, str]]]]:
    """The emulator, and (token, method, path) of every resource request it serves."""
    seen: list[tuple[str, str, str]] = []
    original = emulator_http.Api.handle

    async def handle(self: emulator_http.Api, request: Any) -> Any:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        seen.append((token, request.method, request.path))
        return await original(self, request)

    monkeypatch.setattr(emulator_http.Api, "handle", handle)
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        yield kube, seen


class Operator:
    """One operator process with its own identity, token and liveness port."""

    def __init__(self, kube: emulator.KubeEmulator, identity: str, workdir: pathlib.Path) -> None:
        config = yaml.safe_load(pathlib.Path(kube.kubeconfig).read_text())
        config["users"][0]["user"]["token"] = identity
        kubeconfig = workdir / f"{identity}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        self.identity = identity
        self.health = f"http://127.0.0.1:{ports.free_port()}/healthz"
        env = fake_upstreams.python_env(
            LLMSERVER_OPERATOR_KUBECONFIG=str(kubeconfig), LLMSERVER_OPERATOR_APPLE_ENABLED="false",
            LLMSERVER_OPERATOR_METRICS_PORT="0", LLMSERVER_OPERATOR_RETRY_DELAY_SECONDS="0.5",
            LLMSERVER_OPERATOR_LIVENESS_ENDPOINT=self.health,
            LLMSERVER_OPERATOR_LEADER_ELECTION="true", LLMSERVER_OPERATOR_LEADER_ELECTION_NAMESPACE=LEASE_NS,
            LLMSERVER_OPERATOR_LEADER_ELECTION_IDENTITY=identity,
            LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_SECONDS=str(LEASE_SECONDS),
            LLMSERVER_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE_SECONDS="2",
            LLMSERVER_OPERATOR_LEADER_ELECTION_RETRY_SECONDS=str(RETRY_SECONDS))
        self.log = workdir / f"{identity}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "llmserver_operator"], env=env, start_new_session=True,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(60)


def _holder(kube: emulator.KubeEmulator) -> str | None:
    lease = kube.get("coordination.k8s.io/v1", "Lease", "llmserver-operator", LEASE_NS) or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def _proxy_server(kube: emulator.KubeEmulator, name: str) -> None:
    kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": name, "namespace": "ml"},
                 "spec": {"model": name, "mode": "Proxy", "proxy": {"url": "https://provider.example/v1"}}})


def _ready(kube: emulator.KubeEmulator, name: str) -> bool:
    return ((kube.get(LLMS, "LLMServer", name, "ml") or {}).get("status") or {}).get("phase") == "Ready"


def _status_writers(seen: list[tuple[str, str, str]], name: str) -> collections.Counter[str]:
    return collections.Counter(token for token, method, path in list(seen)
                               if method == "PATCH" and path.endswith(f"/llmservers/{name}/status"))


def test_one_replica_reconciles_and_the_other_takes_over(world, tmp_path: pathlib.Path) -> None:
    kube, seen = world
    a = Operator(kube, "op-a", tmp_path)
    b: Operator | None = None
    try:
        kube.wait_for(lambda: _holder(kube) == "op-a", 60, "op-a holds the lease")
        b = Operator(kube, "op-b", tmp_path)
        kube.wait_for(lambda: any(t == "op-b" for t, _, _ in list(seen)), 60, "op-b is a candidate")
        kube.wait_for(b.healthy, 30, "the waiting candidate answers its liveness probe")
        _proxy_server(kube, "one")
        kube.wait_for(lambda: _ready(kube, "one"), 60, "one Ready")
        time.sleep(2 * LEASE_SECONDS)  # op-b had every chance to interfere
        assert _holder(kube) == "op-a"
        assert _status_writers(seen, "one").keys() == {"op-a"}
        by_b = {path for token, _, path in list(seen) if token == "op-b"}
        assert by_b == {f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/llmserver-operator"}, \
            "a waiting replica touches nothing but the Lease"

        a.stop(signal.SIGKILL)  # no goodbye: only the Lease's silence tells
        killed = time.monotonic()
        kube.wait_for(lambda: _holder(kube) == "op-b", 30, "op-b takes the lease")
        assert time.monotonic() - killed < LEASE_SECONDS + RETRY_SECONDS + 2.0
        _proxy_server(kube, "two")
        kube.wait_for(lambda: _ready(kube, "two"), 60, "two Ready, reconciled by the new leader")
        assert _status_writers(seen, "two").keys() == {"op-b"}
    finally:
        for proc in (a, b):
            if proc is not None:
                proc.stop(signal.SIGKILL)


def test_a_stopped_leader_hands_over_at_once(world, tmp_path: pathlib.Path) -> None:
    kube, _ = world
    a = Operator(kube, "op-a", tmp_path)
    b: Operator | None = None
    try:
        kube.wait_for(lambda: _holder(kube) == "op-a", 60, "op-a holds the lease")
        b = Operator(kube, "op-b", tmp_path)
        kube.wait_for(b.healthy, 60, "op-b waits")
        assert a.stop(signal.SIGTERM) == 0
        stopped = time.monotonic()
        kube.wait_for(lambda: _holder(kube) == "op-b", 30, "op-b takes the released lease")
        assert time.monotonic() - stopped < LEASE_SECONDS, "a released Lease is taken without waiting it out"
        _proxy_server(kube, "three")
        kube.wait_for(lambda: _ready(kube, "three"), 60, "three Ready")
    finally:
        for proc in (a, b):
            if proc is not None:
                proc.stop(signal.SIGKILL)


def test_a_leader_that_cannot_renew_stops_before_its_lease_runs_out(world, tmp_path: pathlib.Path) -> None:
    kube, seen = world
    a = Operator(kube, "op-a", tmp_path)
    try:
        kube.wait_for(lambda: _holder(kube) == "op-a", 60, "op-a holds the lease")
        kube.wait_for(a.healthy, 60, "kopf runs")
        kube.faults.add(verb="update", kind="Lease", status=503)  # renewals fail; everything else works
        cut = time.monotonic()
        assert a.proc.wait(30) == 1, "losing the Lease ends the process, to restart as a candidate"
        assert time.monotonic() - cut < LEASE_SECONDS + 2.0  # renew deadline (2 s) and kopf's stop, not more
        assert "lost the leader lease" in a.log.read_text()
    finally:
        a.stop(signal.SIGKILL)
