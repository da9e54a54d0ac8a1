"""One identity per Mac, audited against what the real code sends to the API emulator.

An admin runs the real `llmserver agent-credentials` for two Macs (the TokenRequest, which the
emulator lacks, is stood in for); the real Mac agent of m1 then runs with the kubeconfig it wrote:
it registers, heartbeats, reads the servers placed on it, reports, and relays a download's
progress. Every request the agent sent must be allowed by m1's own RBAC (the identity builders and
the operator's per-server status grant), every grant must have been used (except the token
refresh, unit-tested with a fake clock), and nothing m1 holds reaches m2's key, Lease or AppleNode
or the gateway's keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import time

import click.testing
import llmserver_api
import pytest
import yaml
from llmserver_cli import cli
from llmserver_cli.apple import agent, agent_settings, token_refresh
from llmserver_cli.hosting import hosted
from llmserver_operator import kube as kube_mod
from llmserver_operator.apple import identity
from testkit import emulator, helm, rbac

pytestmark = pytest.mark.timeout(120)
AGENTS = helm.NAMESPACE
LLMS = f"{llmserver_api.GROUP}/{llmserver_api.VERSION}"
# Grants the scenario cannot exercise, with why they are still needed.
UNUSED_OK = {("create", "serviceaccounts/token"): "token refresh (80% into a token's life; the emulator has no "
                                                   "TokenRequest): tests/unit/apple/test_token_refresh.py"}


def _fake_jwt(namespace: str, account: str, seconds: int) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + seconds, "kubernetes.io": {"namespace": namespace,
                                                                  "serviceaccount": {"name": account}}}
    return "h." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + ".s"


def _credentials(kube: emulator.KubeEmulator, node: str, out: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(token_refresh, "token_request", lambda api_client: _fake_jwt)
    result = click.testing.CliRunner().invoke(cli.main, [
        "agent-credentials", node, "--address", "127.0.0.1", "--namespace", AGENTS,
        "--kubeconfig", kube.kubeconfig, "--output", str(out)])
    assert result.exit_code == 0, result.output
    return result.output


def _server(name: str, node: str) -> dict:
    return {"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": name, "namespace": "ml"},
            "spec": {"model": name, "backend": "mlx", "source": {"pvc": {"claimName": "/nonexistent", "path": name}}},
            "status": {"placement": {"node": node, "address": "127.0.0.1"}}}


async def _run_agent(the_agent: agent.AppleAgent, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await the_agent.run(stop)
    server = llmserver_api.LLMServer.model_validate(_server("a", "m1"))
    unit = hosted.Hosted("ml/a", server, pathlib.Path("/"), lambda: None, phase="Downloading", message="acme/a",
                         download_bytes=10, download_total=100)
    the_agent.engine.units["ml/a"] = unit
    await the_agent.relay_downloads()


def test_a_mac_agent_uses_only_its_own_objects(tmp_path: pathlib.Path, recorded: list[rbac.Request],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        for node in ("m1", "m2"):
            said = _credentials(kube, node, tmp_path / f"{node}.kubeconfig", monkeypatch)
            assert f"ServiceAccount applenode-{node}: created" in said and f"AppleNode {node}: created" in said
        rbac_objects = []
        for name, node in (("a", "m1"), ("b", "m2")):
            kube.create(_server(name, node), keep_status=True)
            server = llmserver_api.LLMServer.model_validate(_server(name, node))
            grant = [identity.build_status_role(server), identity.build_status_binding(server, node, AGENTS)]
            for obj in grant:  # what the operator's scheduler applies when it places the server
                kube.create(obj)
            rbac_objects += grant
        for node in ("m1", "m2"):
            rbac_objects += identity.build_access(node, AGENTS)
        recorded.clear()  # from here on: the agent only (until agent_requests is taken)

        written = yaml.safe_load((tmp_path / "m1.kubeconfig").read_text())
        assert written["contexts"][0]["context"]["namespace"] == AGENTS
        settings = agent_settings.AgentSettings(
            address="127.0.0.1", node_name="m1", namespace=AGENTS, bind_host="127.0.0.1", unified_memory="16Gi",
            lease_seconds=3, sync_seconds=0.2, kubeconfig=str(tmp_path / "m1.kubeconfig"),
            cache_dir=tmp_path / "cache", log_dir=tmp_path / "logs", models_root=tmp_path)
        client = kube_mod.Kube(kube_mod.configuration(settings.kubeconfig, pool_size=4))
        asyncio.run(_run_agent(agent.AppleAgent(settings, client), seconds=2.0))

        node = kube.get(LLMS, "AppleNode", "m1", None)
        assert node["spec"]["unifiedMemory"] == "16Gi"  # registered over the placeholder
        assert kube.get("coordination.k8s.io/v1", "Lease", "applenode-m1", AGENTS)["spec"].get("renewTime")
        key = kube.get("v1", "Secret", "applenode-m1-key", AGENTS)
        assert {**key.get("data", {}), **key.get("stringData", {})}.get("api-key")  # the emulator keeps stringData
        assert kube.get(LLMS, "LLMServer", "a", "ml")["status"]["download"]["bytesDone"] == 10  # relayed

        agent_requests = list(recorded)
        again = _credentials(kube, "m1", tmp_path / "m1-reissued.kubeconfig", monkeypatch)  # re-issue a token
        assert "ClusterRole llmserver-applenode-m1: updated" in again and "AppleNode m1: kept" in again
        assert kube.get(LLMS, "AppleNode", "m1", None)["spec"]["unifiedMemory"] == "16Gi"  # what the agent wrote stays

    granted = rbac.grants(rbac_objects, identity.account_name("m1"), AGENTS)
    denied = sorted({str(r) for r in agent_requests if not rbac.allowed(r, granted)})
    assert denied == [], "the Mac's RBAC does not let its agent do what its code does:\n" + "\n".join(denied)
    unused = sorted({f"{g.verb} {g.resource}" for g in granted
                     if not rbac.used(g, agent_requests) and (g.verb, g.resource) not in UNUSED_OK})
    assert unused == [], unused
    for foreign in (rbac.Request("get", "", "secrets", AGENTS, "applenode-m2-key"),
                    rbac.Request("update", "coordination.k8s.io", "leases", AGENTS, "applenode-m2"),
                    rbac.Request("update", llmserver_api.GROUP, "applenodes", None, "m2"),
                    rbac.Request("patch", llmserver_api.GROUP, "applenodes/status", None, "m2"),
                    rbac.Request("patch", llmserver_api.GROUP, "llmservers/status", "ml", "b"),
                    rbac.Request("get", "", "secrets", AGENTS, f"{helm.RELEASE}-llmserver-gateway-api-keys")):
        assert not rbac.allowed(foreign, granted), foreign
