"""Stand-in gateway replicas for autoscaler tests: small aiohttp servers on loopback that answer
`GET /internal/load` with the JSON of docs/contracts.md ("Gateway load"), and `publish` to put one
into the API emulator as an EndpointSlice of the gateway Service, as the EndpointSlice controller
publishes the real gateway's pods.

Usage::

    servers = gateway_load.LoadServers()
    replica = servers.start()
    replica.set("ml/chat", in_flight=6, held=1)
    gateway_load.publish(kube, "gw-a", replica.port)
    ...
    servers.close()
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web
from testkit import emulator, ports

GATEWAY_NS, GATEWAY = "llmserver-system", "llmserver-gateway"


class LoadServer:
    """One gateway replica's /internal/load: `set` what it reports; `status` other than 200 breaks it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.port = ports.free_port()
        self.status = 200
        self.asked = 0
        self._servers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    def set(self, key: str, in_flight: int, held: int = 0, model: str = "m", refused: int = 0) -> None:
        """Reports `in_flight` requests (of which `held` are held) for the server `namespace/name`, and
        `refused` requests lately refused while it was cold."""
        with self._lock:
            self._servers[key] = {"model": model, "inFlight": in_flight, "held": held, "refused": refused}

    async def _load(self, request: web.Request) -> web.Response:
        self.asked += 1
        if self.status != 200:
            return web.json_response({"error": "broken"}, status=self.status)
        with self._lock:
            return web.json_response({"servers": dict(self._servers)})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/internal/load", self._load)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> LoadServer:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
            self._runner = None


class LoadServers:
    """Starts stand-in gateways on one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-gateways", daemon=True)
        self._thread.start()
        self.started: list[LoadServer] = []

    def start(self) -> LoadServer:
        server = LoadServer(self.loop).start()
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def publish(kube: emulator.KubeEmulator, name: str, port: int, ready: bool = True, namespace: str = GATEWAY_NS,
            service: str = GATEWAY) -> dict[str, Any]:
    """An EndpointSlice of the gateway Service with one endpoint at 127.0.0.1:`port` (port named http)."""
    return kube.create({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": ports.free_port(), "protocol": "TCP"},
                  {"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    })
