"""Which endpoint local mode gives the gateway for a server in each state."""

from __future__ import annotations

import pathlib

import llmserver_api
from llmserver_cli.hosting import hosted
from llmserver_cli.local import gateway_config, routing

CONTROL = "http://127.0.0.1:7000"


def unit(spec: dict[str, object]) -> hosted.Hosted:
    server = llmserver_api.LLMServer.model_validate(
        {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "s"}, "spec": spec}
    )
    return hosted.Hosted(key="s", server=server, origin=pathlib.Path("/m/servers.yaml"), changed=lambda: None)


def self_hosted() -> hosted.Hosted:
    return unit({"model": "tiny", "backend": "llama-cpp", "source": {"pvc": {"claimName": "/m", "path": "t.gguf"}},
                 "routing": {"policy": "PrefixHash"}})  # fmt: skip


def test_ready_runtime_is_routed_directly() -> None:
    u = self_hosted()
    u.phase, u.port = "Ready", 18081
    assert routing.route(u, CONTROL) == gateway_config.Route(
        "tiny", "PrefixHash", (gateway_config.Endpoint("http://127.0.0.1:18081", True),)
    )


def test_idle_unloaded_model_goes_through_the_wake_up_proxy() -> None:
    u = self_hosted()
    u.phase, u.wakeable = "Unloaded", True
    assert routing.route(u, CONTROL).endpoints == (gateway_config.Endpoint(f"{CONTROL}/wake/s", True),)


def test_unloading_is_routed_away_from_the_runtime_before_it_stops() -> None:
    u = self_hosted()
    u.phase, u.port, u.wakeable = "Unloading", 18081, True
    assert routing.route(u, CONTROL).endpoints == (gateway_config.Endpoint(f"{CONTROL}/wake/s", True),)
    u.wakeable = False
    assert routing.route(u, CONTROL).endpoints == ()


def test_failed_or_manually_unloaded_model_has_no_endpoint() -> None:
    for phase in ("Failed", "Unloaded", "Pending"):
        u = self_hosted()
        u.phase = phase
        assert routing.route(u, CONTROL).endpoints == ()


def test_proxy_routes_upstream_only_when_ready_and_names_the_key_env() -> None:
    u = unit({"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://p.example/v1",
              "apiKeySecretRef": {"name": "p", "key": "openai-key"}}})  # fmt: skip
    assert routing.route(u, CONTROL).upstream is None
    u.phase = "Ready"
    assert routing.route(u, CONTROL).upstream == gateway_config.Upstream("https://p.example/v1", "gpt", "OPENAI_KEY")
