"""NetworkPolicy `N` (builders.network_policy): the runtime pods of one server, reachable on their
http port from the configured peers only; `llmserver render` prints it with the other children."""

from __future__ import annotations

import pathlib

import kubernetes_validate
import llmserver_api
import pytest
import yaml
from click.testing import CliRunner
from llmserver_cli import cli
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common, network_policy, plan

pytestmark = pytest.mark.timeout(60)

INGRESS = {"podSelector": {"matchLabels": {"app": "ingress"}}}


def server(name: str = "tiny", namespace: str = "team-x") -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": {
        "model": name, "backend": "llama-cpp", "source": {"pvc": {"claimName": "models", "path": "m.gguf"}}}})


def test_selects_only_this_servers_runtime_pods() -> None:
    policy = network_policy.build_network_policy(server(), settings_mod.Settings())
    assert policy is not None
    assert policy["metadata"] == common.metadata(server(), "tiny", "runtime")  # labels of every child, its namespace
    assert policy["spec"]["podSelector"] == {"matchLabels": common.selector(server())}
    other = network_policy.build_network_policy(server("other"), settings_mod.Settings())
    assert other is not None and other["spec"]["podSelector"] != policy["spec"]["podSelector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress untouched: downloads need the Hub
    kubernetes_validate.validate(common.stamp_config_hash(policy), "1.32", strict=True)


def test_admits_the_configured_peers_on_the_http_port_only() -> None:
    settings = settings_mod.Settings(network_policy_peers=[INGRESS])
    [rule] = network_policy.build_network_policy(server(), settings)["spec"]["ingress"]  # type: ignore[index]
    assert rule == {"from": [INGRESS], "ports": [{"port": common.HTTP_PORT, "protocol": "TCP"}]}


def test_default_peers_are_the_chart_defaults_gateway_operator_and_prometheus() -> None:
    [rule] = network_policy.build_network_policy(server(), settings_mod.Settings())["spec"]["ingress"]  # type: ignore[index]
    release = {"matchLabels": {"kubernetes.io/metadata.name": "llmserver-system"}}
    assert [peer.get("namespaceSelector") for peer in rule["from"]] == [release, release, {}]
    assert [peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for peer in rule["from"]] == [
        "gateway", "operator", None]


def test_peers_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_NETWORK_POLICY_PEERS", '[{"podSelector": {"matchLabels": {"app": "ingress"}}}]')
    assert settings_mod.Settings().network_policy_peers == [INGRESS]


def test_no_peers_admits_nobody() -> None:
    policy = network_policy.build_network_policy(server(), settings_mod.Settings(network_policy_peers=[]))
    assert policy is not None and policy["spec"]["ingress"] == []  # an empty `from` would admit every pod


def test_off_switch_writes_none() -> None:
    off = settings_mod.Settings(network_policy=False)
    assert network_policy.build_network_policy(server(), off) is None
    assert "NetworkPolicy" not in [obj["kind"] for obj in plan.all_children(server(), off)]
    assert [obj["kind"] for obj in plan.all_children(server(), settings_mod.Settings())][-1] == "NetworkPolicy"


def test_render_prints_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(server().model_dump(mode="json", by_alias=True, exclude_none=True)))
    result = CliRunner().invoke(cli.main, ["render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    printed = [doc for doc in yaml.safe_load_all(result.output) if doc]
    assert network_policy.build_network_policy(server(), settings_mod.Settings()) in printed
