"""Live adapter loading against small aiohttp stand-ins of the runtime on loopback: each replica
gets the wanted adapters and loses removed ones, counts come from each replica's /v1/models, a
refused load is reported by name, an unreachable replica asks for a retry, and only ready
EndpointSlice endpoints are called."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import pytest
from llmserver_operator import adapters

pytestmark = pytest.mark.timeout(60)


class StandIn:
    """One runtime replica: /v1/models lists the base and its adapters; load/unload change them."""

    def __init__(self, refuse: str | None = None) -> None:
        self.held: dict[str, str] = {}
        self.refuse = refuse
        self.calls: list[tuple[str, Any]] = []
        self.port = 0

    def app(self) -> aiohttp.web.Application:
        app = aiohttp.web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/load_lora_adapter", self.load)
        app.router.add_post("/v1/unload_lora_adapter", self.unload)
        return app

    async def models(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        data = [{"id": "tiny", "object": "model"}] + [{"id": f"tiny:{n}", "object": "model", "parent": "tiny"}
                                                      for n in sorted(self.held)]
        return aiohttp.web.json_response({"object": "list", "data": data})

    async def load(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.json()
        self.calls.append(("load", body))
        if body["lora_name"] == self.refuse:
            error = {"error": {"message": "lora_path does not exist", "type": "x"}}
            return aiohttp.web.json_response(error, status=404)
        self.held[body["lora_name"]] = body["lora_path"]
        return aiohttp.web.Response(text="ok")

    async def unload(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.json()
        self.calls.append(("unload", body))
        if self.held.pop(body["lora_name"], None) is None:
            return aiohttp.web.json_response({"error": {"message": "not loaded"}}, status=404)
        return aiohttp.web.Response(text="ok")


@pytest.fixture
def serve() -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[aiohttp.web.AppRunner] = []

    def start(stand_in: StandIn) -> StandIn:
        async def go() -> int:
            runner = aiohttp.web.AppRunner(stand_in.app())
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            return runner.addresses[0][1]

        stand_in.port = asyncio.run_coroutine_threadsafe(go(), loop).result(10)
        return stand_in

    yield start
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def slice_of(*endpoints: tuple[str, int, str, bool]) -> list[dict[str, Any]]:
    """One EndpointSlice per port (as process-mode pods get), each with its endpoints."""
    out = []
    for address, port, pod, ready in endpoints:
        out.append({"ports": [{"name": "http", "port": port}],
                    "endpoints": [{"addresses": [address], "conditions": {"ready": ready},
                                   "targetRef": {"kind": "Pod", "name": pod}}]})
    return out


def test_ready_replicas_skip_unready_endpoints() -> None:
    replicas = adapters.ready_replicas(slice_of(("10.0.0.1", 8080, "a", True), ("10.0.0.2", 8080, "b", False)))
    assert replicas == [adapters.Replica("10.0.0.1", 8080, "a")]


def test_every_replica_gets_the_wanted_adapters_and_loses_removed_ones(serve: Any) -> None:
    one, two = serve(StandIn()), serve(StandIn())
    two.held["old"] = "/models/old"
    sync = adapters.AdapterSync()
    replicas = adapters.ready_replicas(slice_of(("127.0.0.1", one.port, "a", True), ("127.0.0.1", two.port, "b", True)))
    result = sync.sync("tiny", {"sql": "/models/hf/sql", "poem": "/models/url/poem"}, replicas)
    assert result.held == {"sql": 2, "poem": 2} and not result.errors and not result.unloading and not result.incomplete
    assert one.held == two.held == {"sql": "/models/hf/sql", "poem": "/models/url/poem"}
    assert ("unload", {"lora_name": "old"}) in two.calls
    # a second pass changes nothing
    before = len(one.calls) + len(two.calls)
    again = sync.sync("tiny", {"sql": "/models/hf/sql", "poem": "/models/url/poem"}, replicas)
    assert again.held == {"sql": 2, "poem": 2}
    assert len(one.calls) + len(two.calls) == before


def test_count_only_does_not_load(serve: Any) -> None:
    one = serve(StandIn())
    one.held["sql"] = "/models/hf/sql"
    replicas = [adapters.Replica("127.0.0.1", one.port, "a")]
    result = adapters.AdapterSync().sync("tiny", {"sql": "x", "poem": "y"}, replicas, load=False)
    assert result.held == {"sql": 1} and one.calls == []


def test_a_refused_load_is_reported_by_name_and_others_still_load(serve: Any) -> None:
    one = serve(StandIn(refuse="broken"))
    result = adapters.AdapterSync().sync("tiny", {"broken": "/models/x", "sql": "/models/sql"},
                                         [adapters.Replica("127.0.0.1", one.port, "pod-a")])
    assert result.held == {"sql": 1}
    assert "pod-a" in result.errors["broken"] and "lora_path does not exist" in result.errors["broken"]


def test_an_unreachable_replica_asks_for_a_retry(serve: Any) -> None:
    one = serve(StandIn())
    replicas = [adapters.Replica("127.0.0.1", 1, "gone"), adapters.Replica("127.0.0.1", one.port, "a")]
    result = adapters.AdapterSync(connect_timeout=1.0).sync("tiny", {"sql": "/models/sql"}, replicas)
    assert result.incomplete and result.held == {"sql": 1}
