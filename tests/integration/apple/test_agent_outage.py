"""A Mac agent rides through an API outage, and a Mac's clock never decides whether it is alive.

The real agent (in this process, no model placed) heartbeats against the API emulator while the
real operator (kopf, on a thread) judges its Lease. The emulator answers 503 to every request for
several lease durations: the agent must keep running, then heartbeat again, and the operator must
not mark the Mac NotReady for an outage that was the API's, not the Mac's. A Mac whose clock is an
hour ahead (or behind) stays Ready while it heartbeats and goes NotReady within the lease duration
once it stops.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from llmserver_cli.apple import agent, agent_settings
from llmserver_operator import kube as kube_mod
from testkit import fake_cluster

AGENT_NS = "llmserver-system"
LEASE_SECONDS = 3
pytestmark = pytest.mark.timeout(180)


class AgentThread:
    """The real AppleAgent on its own event loop and thread."""

    def __init__(self, cluster: fake_cluster.FakeCluster, name: str, workdir: pathlib.Path,
                 clock: Callable[[], datetime.datetime]) -> None:
        settings = agent_settings.AgentSettings(
            node_name=name, address="127.0.0.1", bind_host="127.0.0.1", unified_memory="16Gi", namespace=AGENT_NS,
            lease_seconds=LEASE_SECONDS, sync_seconds=0.5, cache_dir=workdir / "cache", log_dir=workdir / "logs",
            models_root=workdir / "models")
        kube = kube_mod.Kube(kube_mod.configuration(cluster.kube.kubeconfig, pool_size=4), timeout=(1.0, 2.0))
        self.agent = agent.AppleAgent(settings, kube, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._main, name=f"agent-{name}", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            await self.agent.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - the test asserts there is none
            self.error = exc

    def start(self) -> AgentThread:
        self.thread.start()
        assert self._started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self.thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


def _ready(cluster: fake_cluster.FakeCluster, node: str) -> str | None:
    obj = cluster.kube.get("serving.llmserver.dev/v1alpha1", "AppleNode", node, None) or {}
    return next((c["status"] for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


def _watch_ready(cluster: fake_cluster.FakeCluster, node: str, seconds: float) -> set[str | None]:
    """Every Ready status the node showed over `seconds` (sampled every 0.2 s)."""
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(_ready(cluster, node))
        time.sleep(0.2)
    return seen


@pytest.fixture
def cluster() -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster(apple_namespace=AGENT_NS) as running:
        yield running


def _utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def test_agent_survives_an_api_outage_and_heartbeats_again(cluster: fake_cluster.FakeCluster,
                                                         tmp_path: pathlib.Path) -> None:
    mac = AgentThread(cluster, "m1", tmp_path, _utc).start()
    try:
        cluster.kube.wait_for(lambda: _ready(cluster, "m1") == "True", 30, "m1 Ready")
        outage = cluster.kube.faults.add(status=503)  # every request, the agent's and the operator's
        beats_before = mac.agent.heartbeats
        during = _watch_ready(cluster, "m1", 3 * LEASE_SECONDS)
        assert mac.thread.is_alive() and mac.error is None, mac.error
        assert mac.agent.heartbeats == beats_before, "no renewal can succeed while the API answers 503"
        assert outage.hits > 0
        cluster.kube.faults.remove(outage)
        cluster.kube.wait_for(lambda: mac.agent.heartbeats > beats_before, 15, "heartbeats resume")
        after = _watch_ready(cluster, "m1", 2 * LEASE_SECONDS)
        assert during | after == {"True"}, "an outage of the API must not mark the Mac NotReady"
        assert mac.thread.is_alive() and mac.error is None
    finally:
        mac.stop()
    assert mac.error is None, mac.error


@pytest.mark.parametrize("skew", [datetime.timedelta(hours=1), datetime.timedelta(hours=-1)], ids=["ahead", "behind"])
def test_a_skewed_mac_is_judged_by_the_operators_clock(cluster: fake_cluster.FakeCluster, tmp_path: pathlib.Path,
                                                       skew: datetime.timedelta) -> None:
    mac = AgentThread(cluster, "skewed", tmp_path, lambda: _utc() + skew).start()
    try:
        cluster.kube.wait_for(lambda: _ready(cluster, "skewed") == "True", 30, "skewed Mac Ready")
        assert _watch_ready(cluster, "skewed", 3 * LEASE_SECONDS) == {"True"}
    finally:
        mac.stop()
    stopped = time.monotonic()
    cluster.kube.wait_for(lambda: _ready(cluster, "skewed") == "False", 30, "skewed Mac NotReady once silent")
    # lease duration, plus the operator's 2 s check interval, plus slack for a loaded machine
    assert time.monotonic() - stopped < LEASE_SECONDS + 2 + 3
