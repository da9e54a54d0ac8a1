"""Discovery heals itself: a watch cut mid-stream, an API answering 500, and `410 Gone` all lead to
a fresh list, and changes made meanwhile reach the routing table. A scripted in-process API stands
in for the apiserver (the emulator cannot be made to fail on purpose)."""

from __future__ import annotations

import asyncio
import json

import kubernetes.client
from aiohttp import web

from llmserver_gateway import auth, discovery, settings, table

SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}


def _server(name: str, rv: int) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": "ml", "resourceVersion": str(rv)},
            "spec": {"model": name, "source": SOURCE}}


class ScriptedApi:
    """LLMServer list/watch that misbehaves in a fixed order; EndpointSlices stay empty."""

    def __init__(self) -> None:
        self.servers = [_server("one", 1)]
        self.lists = 0
        self.watches = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/apis/serving.llmserver.dev/v1alpha1/namespaces/ml/llmservers", self.llmservers)
        app.router.add_get("/apis/discovery.k8s.io/v1/namespaces/ml/endpointslices", self.slices)
        return app

    async def llmservers(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            self.lists += 1
            if self.lists == 2:
                return web.json_response({"kind": "Status", "code": 500}, status=500)  # API hiccup
            return web.json_response({"items": self.servers, "metadata": {"resourceVersion": "10"}})
        self.watches += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if self.watches == 1:  # one event, then the connection breaks
            await response.write(json.dumps({"type": "ADDED", "object": _server("two", 11)}).encode() + b"\n")
            self.servers = [_server("one", 1), _server("two", 11), _server("three", 12)]  # "three" is missed
            assert request.transport is not None
            request.transport.abort()
            return response
        if self.watches == 2:  # our resourceVersion is too old
            self.servers = [_server("three", 12), _server("four", 13)]  # one and two deleted meanwhile
            gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        await asyncio.sleep(float(request.query.get("timeoutSeconds", "1")))  # quiet from now on
        return response

    async def slices(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"items": [], "metadata": {"resourceVersion": "10"}})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await asyncio.sleep(float(request.query.get("timeoutSeconds", "1")))
        return response


async def test_cut_watch_500_and_410_all_end_in_a_fresh_correct_table() -> None:
    api = ScriptedApi()
    runner = web.AppRunner(api.app(), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port

    def client() -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}")
        return kubernetes.client.ApiClient(configuration=configuration)

    routes = table.RoutingTable()
    config = settings.GatewaySettings(namespace="ml", resync_seconds=30)
    source = discovery.KubernetesSource(config, routes, auth.KeyStore(), client_factory=client)
    task = asyncio.create_task(source.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while sorted(r.model for r in routes.routes()) != ["four", "three"]:
            assert loop.time() < deadline, f"table stuck at {[r.model for r in routes.routes()]}"
            await asyncio.sleep(0.05)
        assert api.lists >= 3 and api.watches >= 3  # relisted after the failures, then watched again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
