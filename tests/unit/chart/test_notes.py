"""NOTES.txt tells the user how to reach the gateway and apply a first LLMServer, for each setup."""

from __future__ import annotations

import yaml

from llmserver_api import llmserver
from testkit import helm


def _first_llmserver(notes: str) -> dict:
    manifest = notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0]
    return yaml.safe_load("\n".join(line[2:] for line in manifest.splitlines()))


def test_default_notes() -> None:
    notes = helm.notes()
    server = llmserver.LLMServer.model_validate(_first_llmserver(notes))  # the API accepts it as printed
    assert server.spec.source and server.spec.source.hugging_face
    assert f"kubectl -n {helm.NAMESPACE} port-forward svc/{helm.RELEASE}-llmserver-gateway 8000:80" in notes
    assert f"http://{helm.RELEASE}-llmserver-gateway.{helm.NAMESPACE}.svc/v1" in notes
    keys = f"{helm.RELEASE}-llmserver-gateway-api-keys"
    assert 'Authorization: Bearer $API_KEY' in notes  # auth is on by default
    assert f"kubectl -n {helm.NAMESPACE} get secret {keys} -o jsonpath='{{.data.apiKeys}}'" in notes
    assert "generated the first key" in notes
    assert "the operator writes a NetworkPolicy named like each LLMServer next to its pods" in notes
    assert f"llmserver agent-credentials <node> --address <Mac IP> --namespace {helm.NAMESPACE}" in notes
    assert "plain HTTP" in notes


def test_notes_warn_when_auth_and_network_policy_are_off() -> None:
    notes = helm.notes({"gateway": {"auth": {"enabled": False}}, "networkPolicy": {"enabled": False},
                        "apple": {"enabled": False}})
    assert "agent-credentials" not in notes
    assert "Authorization" not in notes and "API_KEY" not in notes
    assert "WARNING: gateway.auth.enabled=false" in notes
    assert "networkPolicy.enabled=false: any pod in the cluster can call runtime pods" in notes


def test_nodeport_auth_and_namespaced_notes() -> None:
    notes = helm.notes({"gateway": {"service": {"type": "NodePort", "nodePort": 30080},
                                    "auth": {"enabled": True, "existingSecret": "keys"}},
                        "operator": {"watchNamespaces": ["team-a"]}})
    assert "http://<node-address>:30080/v1" in notes
    assert 'Authorization: Bearer $API_KEY' in notes
    assert f"Secret\n  {helm.NAMESPACE}/keys," in notes
    assert f"get secret keys -o jsonpath" in notes and "generated" not in notes
    assert _first_llmserver(notes)["metadata"]["namespace"] == "team-a"
    assert "reconciles LLMServers in: team-a" in notes
