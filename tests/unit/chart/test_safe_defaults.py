"""Safe defaults of the chart: gateway API keys on (a generated key Secret, reused on upgrade), and
a NetworkPolicy that lets only the gateway, the operator and Prometheus reach runtime pods."""

from __future__ import annotations

import base64
import os
import subprocess
from typing import Any

import pytest
import yaml

from llmserver_api import llmserver
from llmserver_gateway import config as gateway_config
from llmserver_operator import settings as operator_settings
from llmserver_operator.builders import common, network_policy
from testkit import emulator, helm

KEYS = f"{helm.RELEASE}-llmserver-gateway-api-keys"


def _one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{kind} {name} rendered {len(found)} times"
    return found[0]


def _env(objects: list[dict[str, Any]]) -> dict[str, str]:
    gateway = _one(objects, "Deployment", f"{helm.RELEASE}-llmserver-gateway")
    return {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0].get("env", [])}


def _pod_labels(objects: list[dict[str, Any]], component: str) -> dict[str, str]:
    deployment = _one(objects, "Deployment", f"{helm.RELEASE}-llmserver-{component}")
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_default_generates_a_gateway_key_the_gateway_reads(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["default"]
    secret = _one(objects, "Secret", KEYS, helm.NAMESPACE)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    keys = yaml.safe_load(base64.b64decode(secret["data"]["apiKeys"]))
    parsed = [gateway_config.ApiKeyConfig.model_validate(entry) for entry in keys]  # the gateway's own model
    assert len(parsed) == 1 and parsed[0].key and parsed[0].key.startswith("sk-") and len(parsed[0].key) == 51
    assert _env(objects)["LLMSERVER_GATEWAY_API_KEYS_SECRET"] == f"{helm.NAMESPACE}/{KEYS}"
    again = _one(helm.template(), "Secret", KEYS)
    assert again["data"] != secret["data"]  # a fresh install draws a fresh key (never a fixed one)


def _render_against(kube: emulator.KubeEmulator) -> dict[str, Any]:
    """The key Secret as `helm template --dry-run=server` renders it against a live API (so Helm's
    `lookup` sees what is installed). Helm 3: Helm 4 also maps every rendered kind against the
    API's discovery, which the emulator does not serve for NetworkPolicy."""
    result = subprocess.run(
        [helm.helm_binary(3), "template", helm.RELEASE, str(helm.CHART), "--namespace", helm.NAMESPACE,
         "--dry-run=server", "--kubeconfig", kube.kubeconfig, "--show-only", "templates/gateway-api-keys.yaml"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_generated_key_is_reused_from_the_live_secret() -> None:
    """On upgrade Helm `lookup` finds the installed Secret: its keys are kept, never redrawn."""
    live = base64.b64encode(b"- key: sk-live\n- key: sk-added-by-hand\n").decode()
    with emulator.KubeEmulator() as kube:
        fresh = _render_against(kube)
        assert yaml.safe_load(base64.b64decode(fresh["data"]["apiKeys"]))[0]["key"].startswith("sk-")
        kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": KEYS, "namespace": helm.NAMESPACE},
                     "data": {"apiKeys": live}})
        assert _render_against(kube)["data"] == {"apiKeys": live}
        assert _render_against(kube)["data"] == {"apiKeys": live}  # every upgrade, not only the first


def test_existing_secret_is_used_and_none_generated(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["auth"]  # gateway.auth.existingSecret: gateway-api-keys
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert _env(objects)["LLMSERVER_GATEWAY_API_KEYS_SECRET"] == f"{helm.NAMESPACE}/gateway-api-keys"


def test_auth_can_be_turned_off() -> None:
    objects = helm.template({"gateway": {"auth": {"enabled": False}}})
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert "LLMSERVER_GATEWAY_API_KEYS_SECRET" not in _env(objects)


def test_namespaced_gateway_reads_only_the_generated_key_secret() -> None:
    objects = helm.template({"operator": {"watchNamespaces": ["team-a"]}, "apple": {"enabled": False}})
    role = _one(objects, "Role", f"{helm.RELEASE}-llmserver-gateway-api-keys", helm.NAMESPACE)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [KEYS], "verbs": ["get"]}]


def _policy(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, namespace: str = "anywhere") -> dict[str, Any] | None:
    """The NetworkPolicy the operator, configured by this chart's env, writes for a server in `namespace`."""
    for name in list(os.environ):
        if name.startswith("LLMSERVER_OPERATOR_"):
            monkeypatch.delenv(name)
    for name, value in helm.container_env(_one(objects, "Deployment", f"{helm.RELEASE}-llmserver-operator")).items():
        monkeypatch.setenv(name, value)
    return network_policy.build_network_policy(_server(namespace), operator_settings.Settings())


def _server(namespace: str) -> llmserver.LLMServer:
    return llmserver.LLMServer.model_validate({"metadata": {"name": "m", "namespace": namespace},
                                               "spec": {"model": "m", "source": {"pvc": {"claimName": "c"}}}})


def _runtime_labels() -> dict[str, str]:
    return common.labels(_server("anywhere"), "runtime")  # what the operator puts on runtime pods


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def test_network_policy_admits_only_gateway_operator_and_prometheus(rendered: dict[str, list[dict[str, Any]]],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    objects = rendered["default"]
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]  # the operator writes one per server instead
    policy = _policy(objects, monkeypatch)
    assert policy is not None and policy["metadata"]["namespace"] == "anywhere"  # a namespace the chart never heard of
    spec = policy["spec"]
    assert _matches(spec["podSelector"], _runtime_labels()) and spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"port": common.HTTP_PORT, "protocol": "TCP"}]
    release = {"matchLabels": {"kubernetes.io/metadata.name": helm.NAMESPACE}}
    gateway, operator, prometheus = rule["from"]
    assert gateway["namespaceSelector"] == release and _matches(gateway["podSelector"], _pod_labels(objects, "gateway"))
    assert operator["namespaceSelector"] == release and _matches(operator["podSelector"], _pod_labels(objects, "operator"))
    assert not _matches(gateway["podSelector"], _pod_labels(objects, "operator"))  # each peer is one component
    assert prometheus == {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def test_network_policy_selectors_follow_values(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = helm.template({"networkPolicy": {
        "prometheus": {"namespaceSelector": {"matchLabels": {"name": "monitoring"}},
                       "podSelector": {"matchLabels": {"app": "prom", "app.kubernetes.io/name": None}}},
        "extraFrom": [{"podSelector": {"matchLabels": {"app": "ingress"}}}]}})
    policy = _policy(custom, monkeypatch)
    assert policy is not None
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[2] == {"namespaceSelector": {"matchLabels": {"name": "monitoring"}},
                        "podSelector": {"matchLabels": {"app": "prom"}}}
    assert peers[3] == {"podSelector": {"matchLabels": {"app": "ingress"}}}
    assert _policy(helm.template({"networkPolicy": {"enabled": False}}), monkeypatch) is None
    peers = _policy(helm.template({"gateway": {"enabled": False}}), monkeypatch)["spec"]["ingress"][0]["from"]  # type: ignore[index]
    assert len(peers) == 2 and "operator" in str(peers[0])  # no gateway: nothing admitted in its name
