"""spec.autoscaling (LLMServer) and `autoscaling`/`wakeUrl` (static config) reach the routes (issue 18)."""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest

from llmserver_gateway import config, kubeview, table

SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
REPO = pathlib.Path(__file__).resolve().parents[3]


def _server(name: str, model: str, **spec) -> dict:
    return {
        "apiVersion": "serving.llmserver.dev/v1alpha1",
        "kind": "LLMServer",
        "metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"model": model, **({} if spec.get("mode") == "Proxy" else {"source": SOURCE}), **spec},
    }


def test_a_server_scaled_to_zero_keeps_a_route_with_its_hold_and_fallback() -> None:
    scaled = _server("big", "big-chat", replicas=0,
                     autoscaling={"minReplicas": 0, "maxReplicas": 3, "holdSeconds": 42, "maxHeldRequests": 7,
                                  "fallback": "small-chat"})
    view = kubeview.build([scaled], [], {})  # no EndpointSlice at all yet
    assert view.problems == []
    (route,) = view.routes
    assert route.model == "big-chat" and route.endpoints == () and not route.available
    assert route.elastic == table.Elastic(hold_seconds=42.0, max_held_requests=7, fallback="small-chat")
    assert route.server == "ml/big" and route.demand_key == "ml/big"


def test_autoscaling_defaults_hold_and_no_block_means_no_hold() -> None:
    view = kubeview.build([_server("a", "a-chat", autoscaling={"maxReplicas": 2}), _server("b", "b-chat")], [], {})
    a, b = sorted(view.routes, key=lambda r: r.model)
    assert a.elastic == table.Elastic(hold_seconds=300.0, max_held_requests=100, fallback=None)
    assert b.elastic is None and b.demand_key == "ml/b"


def test_proxy_routes_carry_their_server_for_demand() -> None:
    proxy = _server("p", "gpt", mode="Proxy", proxy={"url": "https://provider.example/v1"})
    (route,) = kubeview.build([proxy], [], {}).routes
    assert route.server == "ml/p" and route.elastic is None and route.available


def test_static_config_takes_autoscaling_and_wake_url() -> None:
    text = textwrap.dedent("""
        models:
          - name: big
            endpoints: [{url: "http://127.0.0.1:9", ready: false}]
            autoscaling: {holdSeconds: 30, maxHeldRequests: 2, fallback: small, minReplicas: 0, maxReplicas: 1,
                          scaleDownDelaySeconds: 60}
            wakeUrl: http://127.0.0.1:7000/wake/big
          - name: small
            endpoints: [{url: "http://127.0.0.1:10"}]
            wakeUrl: http://127.0.0.1:7000/wake/small
    """)
    (big, small), _ = config.parse(text, {})
    assert big.elastic == table.Elastic(30.0, 2, "small", "http://127.0.0.1:7000/wake/big")
    assert big.server is None and big.demand_key == "static/big"
    assert small.elastic == table.Elastic(wake_url="http://127.0.0.1:7000/wake/small")  # woken, never held


def test_static_autoscaling_defaults_match_the_crd() -> None:
    (route,), _ = config.parse("models: [{name: m, autoscaling: {}}]", {})
    assert route.elastic == table.Elastic(hold_seconds=300.0, max_held_requests=100)


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: m, autoscaling: {fallback: m}}", "fallback must name another model"),
    ("{name: m, autoscaling: {holdSecond: 3}}", "models[0].autoscaling.holdSecond"),
    ("{name: m, autoscaling: {holdSeconds: -1}}", "models[0].autoscaling.holdSeconds"),
    ("{name: m, wakeUrl: 'not a url'}", "models[0].wakeUrl"),
])
def test_bad_autoscaling_names_the_field(entry: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.parse(f"models: [{entry}]", {})


def test_the_documented_static_config_example_parses() -> None:
    docs = (REPO / "docs" / "contracts.md").read_text()
    section = docs.split("## Gateway static config", 1)[1]
    example = section.split("```yaml", 1)[1].split("```", 1)[0]
    routes, _ = config.parse(example, {"PROVIDER_API_KEY": "sk-x"})
    elastic = {route.model: route.elastic for route in routes}
    assert any(e is not None and e.hold_seconds and e.wake_url for e in elastic.values()), elastic
