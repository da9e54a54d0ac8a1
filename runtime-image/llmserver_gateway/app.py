"""The gateway's aiohttp application: OpenAI routes, auth, routing, health and metrics.

The hot path stays light: the body is parsed once with the stdlib JSON parser to read `model`
(and, for PrefixHash, the start of the prompt); it is forwarded as received, not re-validated,
because the runtime behind validates it fully anyway. Only proxy mode re-encodes the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import prometheus_client
from aiohttp import web

from llmserver_gateway import auth, balancing, errors, metrics, proxy, settings, table
from llmserver_api.protocol import errors as protocol_errors
from llmserver_api.protocol import models as protocol_models

log = logging.getLogger("llmserver.gateway")

PROXIED_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank")


@dataclasses.dataclass
class Gateway:
    """Everything one gateway app holds; lives on the app, never in a module global."""

    config: settings.GatewaySettings
    routes: table.RoutingTable
    keys: auth.KeyStore
    background: Sequence[Callable[[], Awaitable[None]]] = ()
    balancer: balancing.Balancer = dataclasses.field(init=False)
    metrics: metrics.GatewayMetrics = dataclasses.field(default_factory=metrics.GatewayMetrics)
    proxy: proxy.Proxy | None = None
    started_at: int = dataclasses.field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.balancer = balancing.Balancer(self.config.load_factor)


GATEWAY = web.AppKey("gateway", Gateway)


def create_app(
    config: settings.GatewaySettings,
    routes: table.RoutingTable,
    keys: auth.KeyStore,
    background: Sequence[Callable[[], Awaitable[None]]] = (),
) -> web.Application:
    """The gateway app. `background` coroutines (config reload, discovery) run for the app's life."""
    app = web.Application(client_max_size=config.max_body_bytes)
    app[GATEWAY] = Gateway(config=config, routes=routes, keys=keys, background=background)
    app.cleanup_ctx.append(_lifecycle)
    for path in PROXIED_PATHS:
        app.router.add_post(path, _proxied)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{model:.+}", _model)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    app.router.add_route("*", "/{tail:.*}", _unknown)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Opens the shared upstream client and starts the table sources; undoes both on shutdown."""
    gw = app[GATEWAY]
    connector = aiohttp.TCPConnector(limit=gw.config.max_connections, limit_per_host=0, ttl_dns_cache=30)
    session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
    gw.proxy = proxy.Proxy(session, gw.balancer, gw.metrics, gw.config)
    tasks = [asyncio.create_task(_supervise(run)) for run in gw.background]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await session.close()


async def _supervise(run: Callable[[], Awaitable[None]]) -> None:
    """Keeps a background source alive: an unexpected crash is logged and the source restarted."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gateway background task crashed; restarting it in 5 s")
            await asyncio.sleep(5)


async def _proxied(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    started = time.perf_counter()
    label = metrics.UNKNOWN_MODEL
    status = 500
    try:
        key = gw.keys.authenticate(request.headers.get("Authorization"))
        body = await request.read()
        payload = _parse(body)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise protocol_errors.invalid_request("`model` is required and must be a string.", param="model")
        if key is not None:
            gw.keys.admit(key, model)
        route = gw.routes.get(model)
        if route is None:
            raise protocol_errors.model_not_found(model)
        label = model
        assert gw.proxy is not None
        if route.upstream is not None:
            response = await gw.proxy.forward_upstream(request, route, request.path[3:], payload, started)
        elif not route.ready_endpoints:
            response = errors.no_endpoint(model)
        else:
            prefix = None
            if route.policy is table.Policy.PREFIX_HASH:
                prefix = balancing.prompt_prefix(payload, gw.config.prefix_chars)
            response = await gw.proxy.forward(request, route, request.path[3:], body, prefix, started)
        status = 499 if response.get(proxy.CLIENT_GONE) else response.status
        return response
    except protocol_errors.APIError as exc:
        status = exc.status_code
        return errors.to_response(exc)
    except asyncio.CancelledError:
        status = 499  # client closed the request (nginx's convention)
        raise
    finally:
        gw.metrics.child(gw.metrics.requests, label, str(status)).inc()
        gw.metrics.child(gw.metrics.latency, label).observe(time.perf_counter() - started)


def _parse(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise protocol_errors.invalid_request("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise protocol_errors.invalid_request("The request body must be a JSON object.")
    return payload


async def _models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        key = gw.keys.authenticate(request.headers.get("Authorization"))
    except protocol_errors.APIError as exc:
        return errors.to_response(exc)
    listing = protocol_models.ModelList(
        data=[
            protocol_models.Model(id=route.model, created=gw.started_at, owned_by="llmserver")
            for route in gw.routes.routes()
            if key is None or key.allows(route.model)
        ]
    )
    return web.Response(body=listing.model_dump_json(exclude_none=True), content_type="application/json")


async def _model(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["model"]
    try:
        key = gw.keys.authenticate(request.headers.get("Authorization"))
        if gw.routes.get(name) is None or (key is not None and not key.allows(name)):
            raise protocol_errors.model_not_found(name)
    except protocol_errors.APIError as exc:
        return errors.to_response(exc)
    model = protocol_models.Model(id=name, created=gw.started_at, owned_by="llmserver")
    return web.Response(body=model.model_dump_json(exclude_none=True), content_type="application/json")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    if not gw.routes.loaded:
        return errors.to_response(protocol_errors.unavailable("The routing table has not been loaded yet."))
    return web.json_response({"status": "ready", "models": len(gw.routes.routes())})


async def _metrics(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    current = gw.routes.routes()
    gw.metrics.routes.set(len(current))
    gw.metrics.ready_endpoints.clear()
    routed: set[tuple[str, str]] = set()
    for route in current:
        count = 1 if route.upstream is not None else len(route.ready_endpoints)
        gw.metrics.ready_endpoints.labels(route.model).set(count)
        routed.update((route.model, e.url) for e in route.endpoints)
        if route.upstream is not None:
            routed.add((route.model, route.upstream.url))
    busy = {url for url, n in gw.balancer.in_flight.items() if n}
    gw.metrics.forget_endpoints(routed, busy)
    return web.Response(body=gw.metrics.render(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


async def _unknown(request: web.Request) -> web.Response:
    if request.path in PROXIED_PATHS or request.path in ("/v1/models", "/health", "/ready", "/metrics"):
        return errors.to_response(protocol_errors.method_not_allowed(request.method, request.path))
    return errors.to_response(protocol_errors.not_found(request.path))
