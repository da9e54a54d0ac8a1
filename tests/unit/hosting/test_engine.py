"""The shared hosting lifecycle (local mode and the Mac agent run on it): eviction of the least
recently used by count or by memory, idle unload from the runtime's metrics, an idle unload called
off by a request, wake on request, failures kept to their own server. Runtime processes are stood
in for (the integration tests of local mode and the Macs run real ones)."""

from __future__ import annotations

import asyncio
import pathlib
import time
from typing import Any

import pytest

import llmserver_api
from llmserver_cli.hosting import engine, hosted, settings, steps

GiB = 2**30


class FakeProcess:
    """Stands in for a runtime: running until stopped; records the stop."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.pid = 4242
        self.log_path = pathlib.Path("/dev/null")
        self._exited = asyncio.Event()

    async def stop(self) -> None:
        self.returncode = -15
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        return self.returncode or 0

    def crash(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def tail(self, lines: int = 5) -> str:
        return "boom"


def _server(name: str, root: pathlib.Path = pathlib.Path("/models")) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": str(root), "path": name}}},
    })


def _on_disk(tmp_path: pathlib.Path, name: str) -> llmserver_api.LLMServer:
    (tmp_path / name).mkdir()
    return _server(name, tmp_path)


def _engine(tmp_path: pathlib.Path, budget: settings.MemoryBudget | None = None, **knobs: Any) -> engine.Engine:
    config = settings.EngineSettings(python="/py", cache_dir=tmp_path, log_dir=tmp_path, env={}, **knobs)
    return engine.Engine(config, lambda: None, budget=budget)


def _ready(the_engine: engine.Engine, name: str, last_used: float, memory: int | None = None) -> hosted.Hosted:
    unit = the_engine.add(f"ml/{name}", _server(name), pathlib.Path("/models/m.yaml"))
    unit.phase, unit.port, unit.last_used, unit.memory_bytes = "Ready", 18000, last_used, memory
    unit.process = FakeProcess()  # type: ignore[assignment]
    return unit


def test_least_recently_used_models_are_evicted_until_the_new_one_fits_in_memory(tmp_path: pathlib.Path) -> None:
    units: list[hosted.Hosted] = []
    budget = settings.MemoryBudget(  # 2 GiB free now; every stopped model gives its memory back
        estimate=lambda path: 7 * GiB,
        available=lambda: 2 * GiB + sum(u.memory_bytes or 0 for u in units if u.phase == "Unloaded"),
    )
    the_engine = _engine(tmp_path, budget)
    units += [_ready(the_engine, name, used, 4 * GiB) for name, used in (("oldest", 1), ("middle", 2), ("newest", 3))]
    incoming = the_engine.add("ml/big", _server("big"), pathlib.Path("/m"))
    incoming.memory_bytes = 7 * GiB
    asyncio.run(the_engine._make_room(incoming))
    assert [u.phase for u in units] == ["Unloaded", "Unloaded", "Ready"]
    assert units[0].port is None and units[0].process is None
    assert "least recently used" in units[0].message and "ml/big" in units[0].message
    assert not units[0].wakeable  # this host does not wake on request


def test_nothing_is_evicted_when_the_model_fits(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, settings.MemoryBudget(estimate=lambda path: GiB, available=lambda: 8 * GiB))
    resident = _ready(the_engine, "resident", 1.0, 4 * GiB)
    incoming = the_engine.add("ml/small", _server("small"), pathlib.Path("/m"))
    incoming.memory_bytes = GiB
    asyncio.run(the_engine._make_room(incoming))
    assert resident.phase == "Ready" and resident.process is not None


def test_count_cap_unloads_the_least_recently_used_and_lets_it_wake(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, max_loaded=2, wake_on_request=True)
    old = _ready(the_engine, "old", 1.0)
    recent = _ready(the_engine, "recent", 2.0)
    incoming = the_engine.add("ml/new", _server("new"), pathlib.Path("/m"))
    asyncio.run(the_engine._make_room(incoming))
    assert (old.phase, recent.phase) == ("Unloaded", "Ready")
    assert old.wakeable and "--max-loaded 2" in old.message and "starts on the next request" in old.message


class _Metrics:
    """/metrics of two runtimes: both served 3 requests; the one on port 18001 has one in flight."""

    def get(self, url: str, timeout: object) -> _Metrics._Response:
        return self._Response(int(url.split(":")[2].split("/")[0]))

    class _Response:
        def __init__(self, port: int) -> None:
            self.body = (
                "# TYPE llmserver_requests_total counter\nllmserver_requests_total{model=\"m\"} 3\n"
                f"# TYPE llmserver_requests_in_flight gauge\nllmserver_requests_in_flight {int(port == 18001)}\n"
            )

        async def __aenter__(self) -> _Metrics._Response:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def text(self) -> str:
            return self.body


def test_idle_models_are_unloaded_and_busy_ones_kept(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, idle_unload=60)
    the_engine.http = _Metrics()  # type: ignore[assignment]
    idle = _ready(the_engine, "idle", time.time() - 120)
    busy = _ready(the_engine, "busy", time.time() - 120)
    busy.port = 18001
    idle.usage = busy.usage = (3.0, 0.0)
    asyncio.run(the_engine.track_usage())
    assert idle.phase == "Unloaded" and "idle for" in idle.message
    assert busy.phase == "Ready" and busy.last_used is not None and busy.last_used > time.time() - 5


async def test_a_request_during_the_drain_calls_an_idle_unload_off(tmp_path: pathlib.Path) -> None:
    the_engine = _engine(tmp_path, wake_on_request=True, drain_seconds=0.3)
    unit = _ready(the_engine, "m", 1.0)
    unloading = asyncio.create_task(the_engine.unload(unit, "idle for 99s", wakeable=True, keep_if_used=True))
    await asyncio.sleep(0.05)
    assert unit.phase == "Unloading" and unit.wakeable  # routed to the wake-up proxy meanwhile
    assert await the_engine.ensure_loaded(unit, timeout=2)
    await unloading
    assert unit.phase == "Ready" and unit.process is not None


@pytest.fixture
def fake_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """steps.download/start without processes: start attaches a FakeProcess and says Ready."""
    started: list[str] = []

    async def download(unit: hosted.Hosted, config: settings.EngineSettings) -> None:
        return None

    async def start(unit: hosted.Hosted, config: settings.EngineSettings, http: object, pick_port: Any) -> None:
        if unit.model == "broken":
            raise hosted.LoadFailed("runtime exited with code 1: boom")
        unit.port = pick_port()
        unit.process = FakeProcess()  # type: ignore[assignment]
        started.append(unit.key)
        unit.touch()
        unit.set("Ready", f"serving on {config.bind_host}:{unit.port}")

    monkeypatch.setattr(steps, "download", download)
    monkeypatch.setattr(steps, "start", start)
    return started


async def test_an_unloaded_model_wakes_on_request_on_a_port_of_the_range(
    tmp_path: pathlib.Path, fake_steps: list[str]
) -> None:
    async with _engine(tmp_path, wake_on_request=True, port_range_start=31000) as the_engine:
        unit = the_engine.add("m", _on_disk(tmp_path, "m"), pathlib.Path("/m"))
        unit.wakeable, unit.phase = True, "Unloaded"
        assert await the_engine.ensure_loaded(unit, timeout=2)
        assert unit.phase == "Ready" and fake_steps == ["m"] and unit.port is not None and unit.port >= 31000


async def test_a_manual_unload_does_not_wake_and_load_brings_it_back(
    tmp_path: pathlib.Path, fake_steps: list[str]
) -> None:
    async with _engine(tmp_path, wake_on_request=True) as the_engine:
        unit = the_engine.add("m", _on_disk(tmp_path, "m"), pathlib.Path("/m"))
        the_engine.launch(unit)
        assert await the_engine.ensure_loaded(unit, timeout=2)
        await the_engine.unload(unit, "unloaded by hand", wakeable=False)
        assert unit.phase == "Unloaded" and unit.message == "unloaded by hand"
        assert not await the_engine.ensure_loaded(unit, timeout=0.2)
        the_engine.load(unit)
        assert await the_engine.ensure_loaded(unit, timeout=2) and fake_steps == ["m", "m"]


async def test_a_failure_or_a_crash_marks_only_that_server_failed(
    tmp_path: pathlib.Path, fake_steps: list[str]
) -> None:
    async with _engine(tmp_path) as the_engine:
        broken = the_engine.add("broken", _on_disk(tmp_path, "broken"), pathlib.Path("/m"))
        healthy = the_engine.add("healthy", _on_disk(tmp_path, "healthy"), pathlib.Path("/m"))
        missing = the_engine.add("missing", _server("missing", tmp_path), pathlib.Path("/m"))
        for unit in (broken, healthy, missing):
            the_engine.launch(unit)
        await asyncio.sleep(0.05)
        assert broken.phase == "Failed" and "boom" in broken.message
        assert missing.phase == "Failed" and "does not exist on this machine" in missing.message
        assert healthy.phase == "Ready"
        assert isinstance(healthy.process, FakeProcess)
        healthy.process.crash(3)
        await asyncio.sleep(0.05)
        assert healthy.phase == "Failed" and "code 3" in healthy.message and healthy.port is None


async def test_removing_a_server_stops_its_runtime(tmp_path: pathlib.Path, fake_steps: list[str]) -> None:
    async with _engine(tmp_path) as the_engine:
        unit = the_engine.add("ml/m", _on_disk(tmp_path, "m"), pathlib.Path("/m"))
        the_engine.launch(unit)
        await asyncio.sleep(0.05)
        process = unit.process
        assert isinstance(process, FakeProcess)
        await the_engine.remove("ml/m")
        assert "ml/m" not in the_engine.units and process.returncode is not None
