"""The scheduler's node readiness: judged on the operator's clock, whatever the Mac's clock says."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from llmserver_operator import kube as kube_mod
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import leases, scheduler

WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class _Kube:
    """One Lease and the AppleNode status patches, in memory; `down` makes every read fail."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.down = False
        self.node: dict[str, Any] = {"metadata": {"name": "m1"}, "status": {}}

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        if self.down:
            raise kube_mod.TransportError("connection refused")
        return self.lease

    def patch_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        self.node["status"] = {**self.node["status"], **status}


class _World:
    def __init__(self, skew: datetime.timedelta) -> None:
        self.kube = _Kube()
        self.mono = 1000.0
        self.skew = skew
        self.beats = 0
        self.scheduler = scheduler.AppleScheduler(self.kube, settings_mod.Settings(),  # type: ignore[arg-type]
                                                  now=lambda: WALL, monotonic=lambda: self.mono)

    def heartbeat(self) -> None:
        """The agent renews with ITS clock (ours + skew)."""
        self.beats += 1
        mac_now = WALL + self.skew + datetime.timedelta(seconds=self.mono + self.beats)
        self.kube.lease = {"spec": {"holderIdentity": "m1", "leaseDurationSeconds": 15,
                                    "renewTime": leases.format_micro_time(mac_now)}}

    def check(self, after: float) -> str | None:
        self.mono += after
        self.scheduler.refresh_node(self.kube.node)
        return next((c["status"] for c in self.kube.node["status"].get("conditions", []) if c["type"] == "Ready"), None)


@pytest.mark.parametrize("skew", [datetime.timedelta(hours=1), datetime.timedelta(hours=-1), datetime.timedelta(0)])
def test_a_heartbeating_mac_stays_ready_and_a_silent_one_expires_whatever_its_clock(skew) -> None:
    world = _World(skew)
    world.heartbeat()
    assert world.check(0) is None  # first sighting: not trusted until renewed
    for _ in range(20):  # 100 s of heartbeats every 5 s
        world.heartbeat()
        assert world.check(5) == "True"
    assert world.check(10) == "True"  # silent 10 s < 15 s
    assert world.check(6) == "False"  # silent 16 s
    assert world.kube.node["status"]["conditions"][0]["reason"] == "HeartbeatMissed"
    world.heartbeat()
    assert world.check(1) == "True"


def test_an_api_outage_of_the_operator_expires_nobody() -> None:
    world = _World(datetime.timedelta(0))
    world.heartbeat()
    world.check(0)
    world.heartbeat()
    assert world.check(1) == "True"
    world.kube.down = True
    for _ in range(12):  # 60 s without reaching the API (nor could the agent)
        with pytest.raises(kube_mod.ApiError):
            world.check(5)
    world.kube.down = False
    assert world.check(1) == "True"  # the agent has not renewed yet, but we were blind, not it
    assert world.check(15) == "False"  # and silence counts again from our recovery


def test_a_lease_left_by_a_dead_agent_is_not_trusted_after_an_operator_restart() -> None:
    world = _World(datetime.timedelta(0))
    world.heartbeat()
    world.kube.node["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "HeartbeatMissed"}]}
    for _ in range(5):
        assert world.check(5) == "False"
