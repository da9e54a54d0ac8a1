"""LoRA adapter routes (issue 21): `<model>:<adapter>` reaches only replicas that list it."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from llmserver_gateway import adapter_probe, adapter_routes, config, kubeview, table

SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
LORA = {"huggingFace": {"repo": "acme/tiny-lora"}}


def _server(name: str, model: str, created: str = "2026-01-01T00:00:00Z", **spec) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": "ml", "creationTimestamp": created},
            "spec": {"model": model, "source": SOURCE, **spec}}


def _slice(service: str, ips: list[str]) -> dict:
    return {"metadata": {"name": f"{service}-x", "namespace": "ml", "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def test_each_adapter_gets_a_route_with_the_servers_endpoints_and_hold() -> None:
    server = _server("tiny", "tiny", adapters=[{"name": "sql", "source": LORA}, {"name": "poet", "source": LORA}],
                     autoscaling={"maxReplicas": 2, "fallback": "other"})
    view = kubeview.build([server], [_slice("tiny", ["10.0.0.1", "10.0.0.2"])], {})
    routes = {r.model: r for r in view.routes}
    assert sorted(routes) == ["tiny", "tiny:poet", "tiny:sql"]
    sql = routes["tiny:sql"]
    assert sql.adapter_of == "tiny" and sql.endpoints == routes["tiny"].endpoints and sql.server == "ml/tiny"
    assert sql.elastic is not None and sql.elastic.hold_seconds == 300 and sql.elastic.fallback is None
    assert routes["tiny"].adapter_of is None and routes["tiny"].elastic.fallback == "other"


def test_a_model_name_wins_over_an_adapter_name() -> None:
    older = _server("a", "tiny", adapters=[{"name": "sql", "source": LORA}])
    newer = _server("b", "tiny:sql", created="2026-02-01T00:00:00Z")
    view = kubeview.build([older, newer], [], {})
    assert {r.model: r.source for r in view.routes} == {"tiny": "ml/a", "tiny:sql": "ml/b"}
    assert any("adapter 'sql' is not routed" in p for p in view.problems)


def test_restrict_keeps_only_replicas_that_list_the_adapter() -> None:
    base = table.Route(model="m", endpoints=(table.Endpoint("http://a"), table.Endpoint("http://b"),
                                             table.Endpoint("http://c", ready=False)))
    routes = {"m": base, "m:x": adapter_routes.route(base, "x")}
    assert adapter_routes.probe_targets(routes.values()) == {"http://a": None, "http://b": None}
    out = adapter_routes.restrict(dict(routes), {"http://a": frozenset({"m", "m:x"}), "http://b": frozenset({"m"})})
    assert [e.url for e in out["m:x"].ready_endpoints] == ["http://a"]
    assert out["m"] is base  # the base model's own route is untouched
    assert not adapter_routes.restrict(dict(routes), {})["m:x"].available  # not probed yet: held nowhere


async def test_the_probe_learns_adapters_and_reinstalls_the_table() -> None:
    served = {"a": ["m", "m:x"], "b": ["m"]}

    def app(name: str) -> web.Application:
        application = web.Application()

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": i, "object": "model"} for i in served[name]]})

        application.router.add_get("/v1/models", models)
        return application

    servers = [TestServer(app("a")), TestServer(app("b"))]
    for server in servers:
        await server.start_server()
    urls = [str(server.make_url("")).rstrip("/") for server in servers]
    routes = table.RoutingTable()
    probe = adapter_probe.AdapterProbe(routes, interval=0.1, timeout=1)
    base = table.Route(model="m", endpoints=tuple(table.Endpoint(u) for u in urls))
    routes.replace([base, adapter_routes.route(base, "x")])
    assert not routes.get("m:x").available
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(probe.run(session))
        try:
            await _until(lambda: [e.url for e in routes.get("m:x").ready_endpoints] == urls[:1])
            served["b"] = ["m", "m:x"]  # the operator loaded it on the second replica too
            await _until(lambda: [e.url for e in routes.get("m:x").ready_endpoints] == urls)
            served["a"] = ["m"]  # and unloaded it from the first
            await _until(lambda: [e.url for e in routes.get("m:x").ready_endpoints] == urls[1:])
        finally:
            task.cancel()
            for server in servers:
                await server.close()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


def test_static_config_adapters_get_routes_and_clashes_are_refused() -> None:
    routes, _ = config.parse("models: [{name: m, endpoints: [{url: 'http://127.0.0.1:9'}], adapters: [sql]}]", {})
    by_name = {r.model: r for r in routes}
    assert by_name["m:sql"].adapter_of == "m" and by_name["m:sql"].endpoints == by_name["m"].endpoints
    for text, message in (
        ("models: [{name: m, adapters: [sql]}, {name: 'm:sql'}]", "models[0].adapters[0]"),
        ("models: [{name: m, upstream: {url: 'https://p.example/v1'}, adapters: [sql]}]", "models[0].adapters"),
        ("models: [{name: m, adapters: ['bad name']}]", "models[0].adapters[0]: String should match"),
    ):
        try:
            config.parse(text, {})
        except config.ConfigError as exc:
            assert message in str(exc), exc
        else:
            raise AssertionError(f"{text} was accepted")
