"""The Mac agent runs LLMServers from every namespace, so a `source.pvc` claim resolves to a folder
under its `models_root` (LLMSERVER_AGENT_MODELS_ROOT) and nowhere else: an absolute or `~`
claimName does not reach the Mac's other files (hosting.sources has the rule; here the agent uses it)."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

import llmserver_api
from llmserver_cli.apple import agent, agent_settings
from llmserver_cli.hosting import sources


def _server(name: str, claim_name: str) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": claim_name, "path": "weights"}}},
    })


def test_the_models_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("LLMSERVER_AGENT_MODELS_ROOT", str(tmp_path))
    assert agent_settings.AgentSettings(address="10.0.0.5", node_name="m1").models_root == tmp_path


def test_placed_servers_resolve_their_claims_under_the_models_root(tmp_path: pathlib.Path) -> None:
    settings = agent_settings.AgentSettings(address="10.0.0.5", node_name="m1", models_root=tmp_path / "models")
    the_agent = agent.AppleAgent(settings, kube=None)  # type: ignore[arg-type]
    placed = {"ml/good": (_server("good", "store"), 1), "ml/escape": (_server("escape", str(tmp_path)), 1),
              "ml/home": (_server("home", "~/Library"), 1)}  # fmt: skip

    async def placed_here() -> dict[str, tuple[llmserver_api.LLMServer, int | None]]:
        return placed

    async def nothing() -> None:
        return None

    the_agent.placed_here = placed_here  # type: ignore[method-assign]
    the_agent.report = nothing  # type: ignore[method-assign]
    the_agent.engine.launch = lambda unit: None  # type: ignore[method-assign]
    the_agent.engine.track_usage = nothing  # type: ignore[method-assign]
    asyncio.run(the_agent.sync())

    units = the_agent.engine.units
    cache = tmp_path / "cache"
    good = units["ml/good"]
    assert sources.model_path(good.server, good.origin, cache) == tmp_path / "models" / "store" / "weights"
    for key in ("ml/escape", "ml/home"):
        with pytest.raises(sources.OutsideModelsRoot, match="spec.source.pvc.claimName"):
            sources.model_path(units[key].server, units[key].origin, cache)
