"""The Mac agent's status.adapters writes, audited against its node's own RBAC: against the API
emulator the real agent reads the servers placed on it and writes status.adapters of each; every
request it sends must be allowed by the node's identity plus the operator's per-server status grant
(`<server>-apple-agent`, patch by name), and a second pass with nothing changed sends no write."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import llmserver_api
import pytest
from llmserver_cli.apple import agent, agent_settings
from llmserver_cli.hosting import hosted, sources
from llmserver_operator import kube as kube_mod
from llmserver_operator.apple import identity
from testkit import emulator, emulator_http, rbac

pytestmark = pytest.mark.timeout(120)
AGENTS = "llmserver-system"
LLMS = f"{llmserver_api.GROUP}/{llmserver_api.VERSION}"


def _server(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": name, "namespace": "ml"},
            "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": "tiny"}},
                     "adapters": [{"name": "sql", "source": {"huggingFace": {"repo": "acme/sql-lora"}}}]},
            "status": {"placement": {"node": node, "address": "127.0.0.1"}}}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[rbac.Request]:
    """Every resource request the emulator receives in this test, as RBAC attributes."""
    requests: list[rbac.Request] = []
    original = emulator_http.Api.handle

    async def handle(self: emulator_http.Api, request: Any) -> Any:
        info = rbac.request_info(request.method, request.path, dict(request.query))
        if info is not None:
            requests.append(info)
        return await original(self, request)

    monkeypatch.setattr(emulator_http.Api, "handle", handle)
    return requests


async def _relay_twice(the_agent: agent.AppleAgent, recorded: list[rbac.Request]) -> int:
    """Reads what is placed here, runs the agent's adapter relay on a Ready unit, then again;
    returns how many requests the second pass sent."""
    wanted = await the_agent.placed_here()
    the_agent.placed = {key: server for key, (server, _generation) in wanted.items()}
    server = the_agent.placed["ml/a"]
    the_agent.engine.units["ml/a"] = hosted.Hosted("ml/a", server, sources.ModelsRoot(pathlib.Path("/")),
                                                   lambda: None, phase="Ready")
    await the_agent.relay_adapters()
    before = len(recorded)
    await the_agent.relay_adapters()
    return len(recorded) - before


def test_the_agent_writes_status_adapters_within_its_own_grant(tmp_path: pathlib.Path,
                                                               recorded: list[rbac.Request]) -> None:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        rbac_objects = identity.build_access("m1", AGENTS)
        for name, node in (("a", "m1"), ("b", "m2")):
            kube.create(_server(name, node), keep_status=True)
            server = llmserver_api.LLMServer.model_validate(_server(name, node))
            rbac_objects += [identity.build_status_role(server), identity.build_status_binding(server, node, AGENTS)]
        recorded.clear()
        settings = agent_settings.AgentSettings(address="127.0.0.1", node_name="m1", namespace=AGENTS,
                                                cache_dir=tmp_path / "cache", log_dir=tmp_path / "logs")
        client = kube_mod.Kube(kube_mod.configuration(kube.kubeconfig, pool_size=2))
        second_pass = asyncio.run(_relay_twice(agent.AppleAgent(settings, client), recorded))

        written = kube.get(LLMS, "LLMServer", "a", "ml")["status"]
        assert written["adapters"] == [{"name": "sql", "phase": "Ready", "readyReplicas": 1,
                                        "message": "served by the runtime on AppleNode 'm1'"}]
        assert written["placement"]["node"] == "m1"  # the merge patch left the rest of status alone
        assert "adapters" not in (kube.get(LLMS, "LLMServer", "b", "ml").get("status") or {})  # not placed here
    assert second_pass == 0, "nothing changed: no request"
    granted = rbac.grants(rbac_objects, identity.account_name("m1"), AGENTS)
    denied = sorted({str(r) for r in recorded if not rbac.allowed(r, granted)})
    assert denied == [], denied
    assert any(r.verb == "patch" and r.resource == "llmservers/status" and r.name == "a" for r in recorded)
