"""The Mac agent and spec.replicas (0 or 1 on a Mac, moved by `unload-model`/`load-model` or the
operator's autoscaler): 0 unloads the runtime and keeps the server listed as Unloaded, 1 loads it
again; a change of replicas or autoscaling alone never restarts a loaded runtime, any other spec
change does. tests/integration/apple/test_mac_scale_to_zero.py runs it with a real agent."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import llmserver_api
from llmserver_cli.apple import agent, agent_settings
from llmserver_cli.hosting import hosted


class FakeProcess:
    def __init__(self) -> None:
        self.returncode: int | None = None
        self.pid = 1

    async def stop(self) -> None:
        self.returncode = -15


def _server(replicas: int, autoscaling: dict[str, Any] | None = None, ctx: int = 256) -> llmserver_api.LLMServer:
    spec: dict[str, Any] = {"model": "m", "backend": "mlx", "replicas": replicas, "mlx": {"maxKvSize": ctx},
                            "source": {"pvc": {"claimName": "store", "path": "m"}}}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "m", "namespace": "ml"}, "spec": spec})


def _agent(tmp_path: pathlib.Path) -> tuple[agent.AppleAgent, list[llmserver_api.LLMServer], list[str]]:
    settings = agent_settings.AgentSettings(address="10.0.0.5", node_name="m1", models_root=tmp_path)
    the_agent = agent.AppleAgent(settings, kube=None)  # type: ignore[arg-type]
    placed: list[llmserver_api.LLMServer] = []
    launches: list[str] = []

    async def placed_here() -> dict[str, tuple[llmserver_api.LLMServer, int | None]]:
        return {"ml/m": (placed[-1], None)} if placed else {}

    async def nothing() -> None:
        return None

    def launch(unit: hosted.Hosted) -> None:  # a runtime that is Ready at once
        launches.append(unit.key)
        unit.process, unit.port = FakeProcess(), 18000  # type: ignore[assignment]
        unit.set("Ready", "serving")

    the_agent.placed_here = placed_here  # type: ignore[method-assign]
    the_agent.report = nothing  # type: ignore[method-assign]
    the_agent.engine.launch = launch  # type: ignore[method-assign]
    the_agent.engine.track_usage = nothing  # type: ignore[method-assign]
    return the_agent, placed, launches


def test_replicas_zero_unloads_and_one_loads_again_without_other_restarts(tmp_path: pathlib.Path) -> None:
    the_agent, placed, launches = _agent(tmp_path)
    scaling = {"minReplicas": 0, "maxReplicas": 1}

    def sync(server: llmserver_api.LLMServer) -> hosted.Hosted:
        placed.append(server)
        asyncio.run(the_agent.sync())
        return the_agent.engine.units["ml/m"]

    unit = sync(_server(1, scaling))
    assert unit.phase == "Ready" and launches == ["ml/m"]
    unit = sync(_server(0, scaling))
    assert unit.phase == "Unloaded" and not unit.resident and "spec.replicas is 0" in unit.message
    assert agent.model_report(unit)["state"] == "Unloaded"  # still listed: the operator reports replicas 0
    assert sync(_server(0, scaling)).phase == "Unloaded" and launches == ["ml/m"]
    unit = sync(_server(1, scaling))
    assert unit.phase == "Ready" and launches == ["ml/m", "ml/m"]
    assert sync(_server(1, {"minReplicas": 0, "maxReplicas": 1, "scaleDownDelaySeconds": 5})) is unit
    assert sync(_server(1)) is unit and launches == ["ml/m", "ml/m"]  # autoscaling removed: no restart
    restarted = sync(_server(1, ctx=512))
    assert restarted is not unit and launches == ["ml/m"] * 3  # a runtime setting changed: restarted


def test_a_server_placed_at_zero_is_not_loaded(tmp_path: pathlib.Path) -> None:
    the_agent, placed, launches = _agent(tmp_path)
    placed.append(_server(0, {"minReplicas": 0, "maxReplicas": 1}))
    asyncio.run(the_agent.sync())
    assert the_agent.engine.units == {} and launches == []
    placed.append(_server(1, {"minReplicas": 0, "maxReplicas": 1}))
    asyncio.run(the_agent.sync())
    assert the_agent.engine.units["ml/m"].phase == "Ready" and launches == ["ml/m"]


def test_the_agent_engine_leaves_autoscaled_servers_to_spec_replicas(tmp_path: pathlib.Path) -> None:
    settings = agent_settings.AgentSettings(address="10.0.0.5", node_name="m1", idle_unload_seconds=30)
    config = agent.engine_settings(settings, "key", environ={})
    assert config.idle_unload == 30 and config.autoscaled_idle_unload is False
