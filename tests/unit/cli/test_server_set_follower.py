"""The local set's follower: what a running `up` does when set files appear, change, break or go
(driven against a recording stand-in for the hosting engine; the real one runs in
tests/integration/local/test_up_local_set.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from typing import Any

import pytest

import llmserver_api
from llmserver_cli.local import server_set


def server(name: str, model: str | None = None, replicas: int = 1, claim: str = "/models") -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": name},
        "spec": {"model": model or name, "backend": "llama-cpp", "replicas": replicas,
                 "source": {"pvc": {"claimName": claim, "path": ""}}},
    })  # fmt: skip


@dataclasses.dataclass
class Unit:
    key: str
    server: llmserver_api.LLMServer
    phase: str = "Pending"
    wakeable: bool = False

    @property
    def model(self) -> str:
        return self.server.spec.model

    def set(self, phase: str, message: str = "") -> None:
        self.phase = phase


@dataclasses.dataclass
class Engine:
    units: dict[str, Unit] = dataclasses.field(default_factory=dict)
    calls: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def add(self, key: str, server: llmserver_api.LLMServer, origin: Any) -> Unit:
        self.units[key] = Unit(key, server)
        self.calls.append(("add", key))
        return self.units[key]

    def launch(self, unit: Unit) -> None:
        self.calls.append(("launch", unit.key))

    async def unload(self, unit: Unit, reason: str, wakeable: bool) -> None:
        assert not wakeable
        self.calls.append(("unload", unit.key))

    async def remove(self, key: str) -> None:
        self.units.pop(key)
        self.calls.append(("remove", key))


@pytest.fixture()
def where(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "servers"


def follow(where: pathlib.Path, engine: Engine, reports: list[str]) -> server_set.Follower:
    follower = server_set.Follower(where, report=reports.append)
    started = server_set.load(where)
    follower.adopt(started)
    for manifest in started:
        engine.add(manifest.name, manifest.server, manifest.origin)
    engine.calls.clear()
    return follower


def sync(follower: server_set.Follower, engine: Engine) -> list[tuple[str, str]]:
    follower.seen = server_set.stamps(follower.where)
    asyncio.run(follower.sync(engine))  # type: ignore[arg-type]
    calls, engine.calls[:] = list(engine.calls), []
    return calls


def test_added_changed_and_removed_servers(where: pathlib.Path, tmp_path: pathlib.Path) -> None:
    server_set.write(where, server("first", claim=str(tmp_path)))
    engine, reports = Engine(), []
    follower = follow(where, engine, reports)
    assert sync(follower, engine) == []  # nothing changed since `up` started

    server_set.write(where, server("second", claim=str(tmp_path)))
    assert sync(follower, engine) == [("add", "second"), ("launch", "second")]
    server_set.write(where, server("second", model="renamed", claim=str(tmp_path)))
    assert sync(follower, engine) == [("unload", "second"), ("remove", "second"), ("add", "second"), ("launch", "second")]
    assert engine.units["second"].model == "renamed"
    assert server_set.remove(where, "first") is not None
    assert sync(follower, engine) == [("unload", "first"), ("remove", "first")]
    server_set.write(where, server("cold", replicas=0, claim=str(tmp_path)))
    assert sync(follower, engine) == [("add", "cold")] and engine.units["cold"].phase == "Unloaded"
    assert any("serving second" in line for line in reports) and any("first removed" in line for line in reports)


def test_an_added_autoscaled_server_at_zero_stays_cold_until_a_request(where: pathlib.Path, tmp_path: pathlib.Path) -> None:
    engine, reports = Engine(), []
    follower = follow(where, engine, reports)
    cold = server("elastic", replicas=0, claim=str(tmp_path))
    cold.spec.autoscaling = llmserver_api.llmserver.elastic.Autoscaling(min_replicas=0, max_replicas=2)
    server_set.write(where, cold)
    assert sync(follower, engine) == [("add", "elastic")]  # not launched
    unit = engine.units["elastic"]
    assert (unit.phase, unit.wakeable) == ("Unloaded", True)  # the next request wakes it
    warm = server("warm", replicas=1, claim=str(tmp_path))
    warm.spec.autoscaling = llmserver_api.llmserver.elastic.Autoscaling(min_replicas=0, max_replicas=2)
    server_set.write(where, warm)
    assert sync(follower, engine) == [("add", "warm"), ("launch", "warm")]


def test_servers_it_does_not_own_are_left_alone(where: pathlib.Path, tmp_path: pathlib.Path) -> None:
    engine, reports = Engine(), []
    follower = follow(where, engine, reports)
    engine.add("tiny", server("tiny"), None)  # --demo
    engine.calls.clear()
    server_set.write(where, server("tiny", claim=str(tmp_path)))
    server_set.write(where, server("other", model="tiny", claim=str(tmp_path)))
    assert sync(follower, engine) == []
    assert any("'tiny' ignored: `up` already serves" in line for line in reports)
    assert any("'other' ignored: model 'tiny' is already served by 'tiny'" in line for line in reports)
    (where / "other.yaml").unlink()
    (where / "tiny.yaml").unlink()
    assert sync(follower, engine) == [] and "tiny" in engine.units


def test_a_broken_file_is_reported_once_and_the_rest_still_served(where: pathlib.Path, tmp_path: pathlib.Path) -> None:
    engine, reports = Engine(), []
    follower = follow(where, engine, reports)
    where.mkdir(parents=True, exist_ok=True)
    (where / "broken.yaml").write_text("apiVersion: serving.llmserver.dev/v1alpha1\nkind: LLMServer\nmetadata: {name: b}\nspec: {}\n")
    server_set.write(where, server("good", claim=str(tmp_path)))
    assert sync(follower, engine) == [("add", "good"), ("launch", "good")]
    assert sync(follower, engine) == []
    assert len([line for line in reports if "broken.yaml ignored" in line]) == 1
    server_set.write(where, server("missing", claim=str(tmp_path / "nowhere")))
    assert sync(follower, engine) == [] and any("missing.yaml ignored" in line and "does not exist" in line for line in reports)


def test_stamps_see_a_rewrite_and_skip_temporary_files(where: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path, existed = server_set.write(where, server("a", claim=str(tmp_path)))
    assert not existed
    before = server_set.stamps(where)
    (where / ".add-123.tmp").write_text("half")
    path.write_text(path.read_text() + "\n")
    after = server_set.stamps(where)
    assert list(after) == [path] and after != before
