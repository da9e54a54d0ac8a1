"""spec.autoscaling on one host: local mode scales an idle autoscaled model to zero after
scaleDownDelaySeconds (even one never used), a Mac leaves it to spec.replicas; a gateway's wake
call starts a cold model without waiting, calls an idle unload off, and never restarts a model
unloaded by hand. Runtime processes are stood in for (tests/integration/local runs real ones)."""

from __future__ import annotations

import asyncio
import pathlib
import time
from typing import Any

import pytest

import llmserver_api
from llmserver_cli.hosting import elastic, engine, hosted, settings, steps


class FakeProcess:
    """A runtime that runs until stopped."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.pid = 4242
        self._exited = asyncio.Event()

    async def stop(self) -> None:
        self.returncode = -15
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        return self.returncode or 0

    def tail(self, lines: int = 5) -> str:
        return ""


class _Idle:
    """A runtime /metrics that shows no request ever."""

    def get(self, url: str, timeout: object) -> _Idle:
        return self

    async def __aenter__(self) -> _Idle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def text(self) -> str:
        return "# TYPE llmserver_requests counter\nllmserver_requests_total 0\n"


def _server(
    name: str, root: pathlib.Path, autoscaling: dict[str, Any] | None = None, replicas: int = 1
) -> llmserver_api.LLMServer:
    spec: dict[str, Any] = {"model": name, "backend": "llama-cpp", "replicas": replicas,
                            "source": {"pvc": {"claimName": str(root), "path": name}}}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": name}, "spec": spec})


def _engine(tmp_path: pathlib.Path, **knobs: Any) -> engine.Engine:
    config = settings.EngineSettings(python="/py", cache_dir=tmp_path, log_dir=tmp_path, env={}, **knobs)
    return engine.Engine(config, lambda: None)


def _ready(the_engine: engine.Engine, server: llmserver_api.LLMServer, last_used: float | None) -> hosted.Hosted:
    unit = the_engine.add(server.metadata.name, server, pathlib.Path("/m/servers.yaml"))  # type: ignore[union-attr]
    unit.phase, unit.port, unit.last_used = "Ready", 18000, last_used
    unit.process = FakeProcess()  # type: ignore[assignment]
    return unit


SCALE_TO_ZERO = {"minReplicas": 0, "maxReplicas": 2, "scaleDownDelaySeconds": 30}


def test_idle_limits_follow_the_autoscaling_block_then_the_host_setting(tmp_path: pathlib.Path) -> None:
    to_zero = _server("a", tmp_path, SCALE_TO_ZERO)
    kept = _server("b", tmp_path, {**SCALE_TO_ZERO, "minReplicas": 1})
    plain = _server("c", tmp_path)
    assert elastic.idle_limit(to_zero, 600, scale_to_zero=True) == 30.0
    assert elastic.idle_limit(kept, 600, scale_to_zero=True) is None  # minReplicas 1: never for idleness
    assert elastic.idle_limit(to_zero, 600, scale_to_zero=False) is None  # a Mac: spec.replicas decides
    assert elastic.idle_limit(plain, 600, scale_to_zero=False) == 600
    assert elastic.idle_limit(plain, 0, scale_to_zero=True) is None
    assert elastic.starts_cold(_server("d", tmp_path, SCALE_TO_ZERO, replicas=0))
    assert not elastic.starts_cold(_server("e", tmp_path, {**SCALE_TO_ZERO, "minReplicas": 1}, replicas=0))
    assert not elastic.starts_cold(to_zero)


def test_local_mode_scales_an_idle_autoscaled_model_to_zero_after_the_delay(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, wake_on_request=True)  # no --idle-unload
    the_engine.http = _Idle()  # type: ignore[assignment]
    stale = _ready(the_engine, _server("stale", tmp_path, SCALE_TO_ZERO), time.time() - 31)
    fresh = _ready(the_engine, _server("fresh", tmp_path, SCALE_TO_ZERO), time.time() - 5)
    never = _ready(the_engine, _server("never", tmp_path, SCALE_TO_ZERO), None)
    plain = _ready(the_engine, _server("plain", tmp_path), time.time() - 3600)
    assert the_engine.shortest_idle_limit() == 30.0
    asyncio.run(the_engine.track_usage())
    assert stale.phase == "Unloaded" and stale.wakeable and "idle for 31s" in stale.message
    assert fresh.phase == "Ready" and plain.phase == "Ready"
    assert never.phase == "Ready" and never.last_used is not None  # its clock started now
    never.last_used = time.time() - 40
    asyncio.run(the_engine.track_usage())
    assert never.phase == "Unloaded"


def test_a_mac_never_idle_unloads_an_autoscaled_model(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, idle_unload=10, autoscaled_idle_unload=False)
    the_engine.http = _Idle()  # type: ignore[assignment]
    scaled = _ready(the_engine, _server("scaled", tmp_path, SCALE_TO_ZERO), time.time() - 3600)
    plain = _ready(the_engine, _server("plain", tmp_path), time.time() - 3600)
    asyncio.run(the_engine.track_usage())
    assert scaled.phase == "Ready" and plain.phase == "Unloaded"


@pytest.fixture
def fake_start(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """steps.download/start without processes; start takes 0.2 s, then Ready."""
    started: list[str] = []

    async def download(unit: hosted.Hosted, config: settings.EngineSettings) -> None:
        return None

    async def start(unit: hosted.Hosted, config: settings.EngineSettings, http: object, pick_port: Any) -> None:
        await asyncio.sleep(0.2)
        unit.port = pick_port()
        unit.process = FakeProcess()  # type: ignore[assignment]
        started.append(unit.key)
        unit.set("Ready", "serving")

    monkeypatch.setattr(steps, "download", download)
    monkeypatch.setattr(steps, "start", start)
    return started


async def test_wake_starts_a_cold_model_and_returns_at_once(tmp_path: pathlib.Path, fake_start: list[str]) -> None:
    (tmp_path / "m").mkdir()
    async with _engine(tmp_path, wake_on_request=True) as the_engine:
        unit = the_engine.add("m", _server("m", tmp_path, SCALE_TO_ZERO, replicas=0), pathlib.Path("/m"))
        unit.wakeable, unit.phase = True, "Unloaded"
        began = time.monotonic()
        assert the_engine.wake(unit)
        assert time.monotonic() - began < 0.1 and unit.loading and unit.phase != "Ready"  # did not wait
        assert the_engine.wake(unit)  # a second call while loading starts nothing more
        for _ in range(50):
            if unit.phase == "Ready":
                break
            await asyncio.sleep(0.05)
        assert unit.phase == "Ready" and fake_start == ["m"]


async def test_wake_calls_an_idle_unload_off_and_leaves_a_manual_unload_alone(
    tmp_path: pathlib.Path, fake_start: list[str]
) -> None:
    (tmp_path / "m").mkdir()
    async with _engine(tmp_path, wake_on_request=True, drain_seconds=0.3) as the_engine:
        unit = _ready(the_engine, _server("m", tmp_path, SCALE_TO_ZERO), 1.0)
        unloading = asyncio.create_task(the_engine.unload(unit, "idle for 99s", wakeable=True, keep_if_used=True))
        await asyncio.sleep(0.05)
        assert unit.phase == "Unloading" and the_engine.wake(unit)
        await unloading
        assert unit.phase == "Ready" and fake_start == []  # kept, not restarted
        await the_engine.unload(unit, "unloaded by hand", wakeable=False)
        assert not the_engine.wake(unit) and unit.phase == "Unloaded" and not unit.loading
