"""The Mac agent's memory management: LRU eviction before a load, idle unload, what it reports."""

from __future__ import annotations

import asyncio
import time

import pytest

import llmserver_api
from llmserver_cli.apple import agent, agent_settings, system

GiB = 2**30


def _server(name: str) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": "models", "path": name}}},
    })


class _Proc:
    """Stands in for a runtime process: records that it was stopped."""

    def __init__(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


def _agent(**settings: object) -> agent.AppleAgent:
    return agent.AppleAgent(agent_settings.AgentSettings(address="127.0.0.1", **settings), kube=None)  # type: ignore[arg-type]


def _ready(the_agent: agent.AppleAgent, name: str, last_used: float, memory: int) -> agent.ModelRun:
    run = agent.ModelRun(key=f"ml/{name}", server=_server(name), generation=1, state="Ready", port=18000,
                         memory_bytes=memory, last_used=last_used)
    run.proc = _Proc()  # type: ignore[assignment]
    the_agent.runs[run.key] = run
    return run


def test_least_recently_used_models_are_evicted_until_the_new_one_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    the_agent = _agent()
    oldest = _ready(the_agent, "oldest", last_used=1.0, memory=4 * GiB)
    middle = _ready(the_agent, "middle", last_used=2.0, memory=4 * GiB)
    newest = _ready(the_agent, "newest", last_used=3.0, memory=4 * GiB)
    incoming = agent.ModelRun(key="ml/big", server=_server("big"), generation=1, memory_bytes=7 * GiB)
    the_agent.runs[incoming.key] = incoming
    # 2 GiB free now; every stopped model gives its memory back.
    monkeypatch.setattr(system, "available_memory_bytes",
                        lambda: 2 * GiB + sum(r.memory_bytes for r in the_agent.runs.values() if r.state == "Unloaded"))
    asyncio.run(the_agent._make_room(incoming))
    assert (oldest.state, middle.state, newest.state) == ("Unloaded", "Unloaded", "Ready")
    assert oldest.port is None and "least recently used" in oldest.message and "ml/big" in oldest.message
    reported = {entry["server"]: entry["state"] for entry in (run.report() for run in the_agent.runs.values())}
    assert reported == {"ml/oldest": "Unloaded", "ml/middle": "Unloaded", "ml/newest": "Ready", "ml/big": "Starting"}


def test_nothing_is_evicted_when_the_model_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    the_agent = _agent()
    resident = _ready(the_agent, "resident", last_used=1.0, memory=4 * GiB)
    incoming = agent.ModelRun(key="ml/small", server=_server("small"), generation=1, memory_bytes=GiB)
    monkeypatch.setattr(system, "available_memory_bytes", lambda: 8 * GiB)
    asyncio.run(the_agent._make_room(incoming))
    assert resident.state == "Ready" and not resident.proc.stopped  # type: ignore[union-attr]


def test_idle_models_are_unloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    the_agent = _agent(idle_unload_seconds=60)
    idle = _ready(the_agent, "idle", last_used=time.monotonic() - 120, memory=GiB)
    busy = _ready(the_agent, "busy", last_used=time.monotonic(), memory=GiB)
    busy.port = 18001

    class _Response:
        def __init__(self, port: int) -> None:
            # the idle runtime served 3 requests long ago; the busy one has one in flight now
            in_flight = 0 if port == 18000 else 1
            self.text_body = (
                "# TYPE llmserver_requests_total counter\nllmserver_requests_total{model=\"m\"} 3\n"
                f"# TYPE llmserver_requests_in_flight gauge\nllmserver_requests_in_flight {in_flight}\n"
            )

        async def __aenter__(self) -> _Response:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def text(self) -> str:
            return self.text_body

    class _Http:
        def get(self, url: str, timeout: object) -> _Response:
            return _Response(int(url.split(":")[2].split("/")[0]))

    the_agent._http = _Http()  # type: ignore[assignment]
    idle.usage = (3.0, 0.0)
    busy.usage = (3.0, 0.0)
    asyncio.run(the_agent._track_usage())
    assert idle.state == "Unloaded" and "idle" in idle.message
    assert busy.state == "Ready"
