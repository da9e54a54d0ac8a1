"""The official client run off the event loop: watch events arrive as they are sent (not when the
watch ends), a watch given up ends its thread and connection at once, and API errors name the
path but never carry the response body (it could be a Secret). A scripted in-process API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import kubernetes.client
import pytest
from aiohttp import web

from llmserver_gateway import kubeapi

pytestmark = pytest.mark.timeout(60)
SECRET_BODY = "c2VjcmV0LXZhbHVlLTQyNDI="


class Scripted:
    def __init__(self) -> None:
        self.send_second = asyncio.Event()
        self.watch_closed = asyncio.Event()
        self.query: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/ml/secrets/{name}", self.secret)
        app.router.add_get("/apis/discovery.k8s.io/v1/endpointslices", self.slices)
        return app

    async def secret(self, request: web.Request) -> web.Response:
        if request.match_info["name"] == "missing":
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response({"kind": "Status", "code": 403, "data": {"token": SECRET_BODY}}, status=403)

    async def slices(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"items": [{"metadata": {"name": "a"}}], "metadata": {"resourceVersion": "7"}})
        self.query = dict(request.query)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            event = {"type": "ADDED", "object": {"metadata": {"name": "b", "resourceVersion": "8"}}}
            await response.write(json.dumps(event).encode() + b"\n")
            await self.send_second.wait()
            await response.write(json.dumps({**event, "type": "DELETED"}).encode() + b"\n")
            await asyncio.sleep(30)  # then silence: the client must hang up by itself
        finally:
            self.watch_closed.set()
        return response


@contextlib.asynccontextmanager
async def _served(api: Scripted):
    runner = web.AppRunner(api.app(), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}"))
    try:
        yield kubeapi.Api(client)
    finally:
        client.close()
        await runner.cleanup()


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kube-watch")]


async def test_events_stream_in_and_a_given_up_watch_ends_its_thread() -> None:
    scripted = Scripted()
    async with _served(scripted) as api:
        items, version = await kubeapi.list_objects(api, "/apis/discovery.k8s.io/v1/endpointslices")
        assert ([i["metadata"]["name"] for i in items], version) == (["a"], "7")
        events = kubeapi.watch_events(api, "/apis/discovery.k8s.io/v1/endpointslices", version, 20)
        async with contextlib.aclosing(events):
            first = await asyncio.wait_for(anext(events), 5)  # before the watch ends: streamed
            assert first["type"] == "ADDED"
            scripted.send_second.set()
            assert (await asyncio.wait_for(anext(events), 5))["type"] == "DELETED"
        assert scripted.query["watch"] == "true" and scripted.query["resourceVersion"] == "7"
        assert scripted.query["allowWatchBookmarks"] == "true" and scripted.query["timeoutSeconds"] == "20"
        await asyncio.wait_for(scripted.watch_closed.wait(), 5)  # the connection was dropped
        for _ in range(50):
            if not _watch_threads():
                break
            await asyncio.sleep(0.1)
        assert not _watch_threads()


async def test_a_missing_secret_is_none_and_errors_never_carry_the_body() -> None:
    async with _served(Scripted()) as api:
        assert await kubeapi.read_secret(api, "ml", "missing") is None
        with pytest.raises(kubeapi.ApiError) as caught:
            await kubeapi.read_secret(api, "ml", "forbidden")
        assert caught.value.status == 403
        assert str(caught.value) == "Kubernetes API answered 403 for /api/v1/namespaces/ml/secrets/forbidden"
        assert SECRET_BODY not in repr(caught.value.__cause__) and caught.value.__suppress_context__
