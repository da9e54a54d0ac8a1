"""The Mac agent's side of the hosting lifecycle (the lifecycle itself is tested once, in
tests/unit/hosting): how it configures the engine, estimates a model's memory and reports its
models in AppleNode.status."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import llmserver_api
from llmserver_cli.apple import agent, agent_settings

GiB = 2**30


def _server(name: str) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": "models", "path": name}}},
    })


class _Kube:
    """Records status patches."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        self.patches.append((kind, name, status))


def _agent(**settings: object) -> tuple[agent.AppleAgent, _Kube]:
    kube = _Kube()
    the_agent = agent.AppleAgent(agent_settings.AgentSettings(address="127.0.0.1", node_name="mac-a", **settings),
                                 kube=kube)  # type: ignore[arg-type]
    return the_agent, kube


def test_the_engine_evicts_by_memory_serves_the_node_port_range_and_never_wakes() -> None:
    the_agent, _ = _agent(port_range_start=19000, idle_unload_seconds=30, bind_host="0.0.0.0")
    config = the_agent.engine.config
    assert the_agent.engine.budget is not None
    knobs = (config.port_range_start, config.idle_unload, config.bind_host, config.where)
    assert knobs == (19000, 30, "0.0.0.0", "mac-a")
    assert not config.wake_on_request and config.max_loaded == 0
    assert not config.report_downloads  # the agent relays progress: no child holds API credentials
    assert config.env["LLMSERVER_API_KEY"] == the_agent.api_key  # runtimes demand the node's key


def test_memory_estimate_reads_the_weights_and_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    small = agent.model_memory_bytes(tmp_path)
    (tmp_path / "more.safetensors").write_bytes(b"\0" * 8 * 2**20)
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    assert agent.model_memory_bytes(tmp_path) > small > 0


def test_status_reports_every_model_with_states_the_applenode_schema_accepts() -> None:
    the_agent, kube = _agent()
    states = {"pending": "Pending", "downloading": "Downloading", "ready": "Ready", "going": "Unloading",
              "idle": "Unloaded", "broken": "Failed"}  # fmt: skip
    for name, phase in states.items():
        unit = the_agent.engine.add(f"ml/{name}", _server(name), pathlib.Path("/m"))
        unit.phase, unit.memory_bytes, unit.message = phase, GiB, "x" * 600
    the_agent.engine.units["ml/ready"].port = 18000
    asyncio.run(the_agent.report())
    kind, node, status = kube.patches[-1]
    assert (kind, node, status["modelCount"]) == ("AppleNode", "mac-a", 6)
    reported = {entry["server"]: entry["state"] for entry in status["models"]}
    assert reported == {"ml/pending": "Starting", "ml/downloading": "Downloading", "ml/ready": "Ready",
                        "ml/going": "Unloaded", "ml/idle": "Unloaded", "ml/broken": "Failed"}  # fmt: skip
    llmserver_api.AppleNodeStatus.model_validate(status)  # the CRD's own model takes it
    assert status["allocatedMemoryBytes"] == 2 * GiB  # Starting and Ready hold memory
    assert all(len(entry["message"]) == 500 for entry in status["models"])
    asyncio.run(the_agent.report())
    assert len(kube.patches) == 1  # unchanged: not written again
