"""The gateway's aiohttp application: OpenAI routes, auth, routing, health and metrics.

The hot path stays light: after auth and the gateway's concurrency bound, the body is read within
its size limit and parsed once with the stdlib JSON parser (`bodies`) to read `model` (and, for
PrefixHash, the start of the prompt); it is forwarded as received, not re-validated, because the
runtime behind validates it fully anyway. Only proxy mode re-encodes the body.
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
import aiohttp.abc
import prometheus_client
from aiohttp import web

from llmserver_gateway import auth, balancing, bodies, errors, guard, metrics, proxy, settings, table
from llmserver_api.protocol import errors as protocol_errors
from llmserver_api.protocol import models as protocol_models

log = logging.getLogger("llmserver.gateway")

PROXIED_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank", "/v1/responses")


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
    in_flight: int = 0  # model requests being served now (bounded by config.max_concurrent_requests)

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
    """Opens the upstream clients and starts the table sources; undoes both on shutdown.

    Two clients: one for replicas and the static config's upstreams, and one for tenant-written
    Proxy upstreams whose resolver enforces the Proxy host policy (`guard`)."""
    gw = app[GATEWAY]
    sessions = [
        aiohttp.ClientSession(connector=_connector(gw.config, resolver), skip_auto_headers=("User-Agent",))
        for resolver in (None, guard.GuardedResolver(gw.config.proxy_policy()))
    ]
    gw.proxy = proxy.Proxy(sessions[0], gw.balancer, gw.metrics, gw.config, sessions[1], gw.config.proxy_policy())
    tasks = [asyncio.create_task(_supervise(run)) for run in gw.background]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in sessions:
            await session.close()


def _connector(config: settings.GatewaySettings, resolver: aiohttp.abc.AbstractResolver | None) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(
        limit=config.max_connections, limit_per_host=config.max_connections_per_endpoint, ttl_dns_cache=30,
        resolver=resolver)


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
    """Auth, then the gateway's concurrency bound, then the bounded body, and only then parsing."""
    gw = request.app[GATEWAY]
    started = time.perf_counter()
    label = metrics.UNKNOWN_MODEL
    status = 500
    admitted = False
    try:
        key = gw.keys.authenticate(request.headers.get("Authorization"))
        if gw.in_flight >= gw.config.max_concurrent_requests:
            raise protocol_errors.rate_limited(
                "The gateway is serving as many requests as it takes at once; retry shortly.",
                retry_after_s=gw.config.busy_retry_after)
        gw.in_flight += 1
        admitted = True
        body = await bodies.read(request, gw.config.max_body_bytes, gw.config.body_timeout)
        target = _target(gw, body, key)
        label = target.route.model
        response = await _forward(gw, request, target, body, started)
        status = 499 if response.get(proxy.CLIENT_GONE) else response.status
        return response
    except protocol_errors.APIError as exc:
        status = exc.status_code
        return errors.to_response(exc)
    except asyncio.CancelledError:
        status = 499  # client closed the request (nginx's convention)
        raise
    finally:
        if admitted:
            gw.in_flight -= 1
        gw.metrics.child(gw.metrics.requests, label, str(status)).inc()
        gw.metrics.child(gw.metrics.latency, label).observe(time.perf_counter() - started)


@dataclasses.dataclass(slots=True)
class _Target:
    """What routing needs from a parsed body; the parsed object itself is not kept (memory)."""

    route: table.Route
    prefix: str | None = None
    upstream_body: bytes | None = None  # proxy mode: the body re-encoded with the provider's model name


def _target(gw: Gateway, body: bytes, key: auth.ApiKey | None) -> _Target:
    payload = bodies.parse(body, gw.config.max_json_depth)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise protocol_errors.invalid_request("`model` is required and must be a string.", param="model")
    if key is not None:
        gw.keys.admit(key, model)
    route = gw.routes.get(model)
    if route is None:
        raise protocol_errors.model_not_found(model)
    if route.upstream is not None:
        payload["model"] = route.upstream.model
        encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return _Target(route, upstream_body=encoded)
    if route.policy is table.Policy.PREFIX_HASH:
        return _Target(route, prefix=balancing.prompt_prefix(payload, gw.config.prefix_chars))
    return _Target(route)


async def _forward(
    gw: Gateway, request: web.Request, target: _Target, body: bytes, started: float
) -> web.StreamResponse:
    assert gw.proxy is not None
    route = target.route
    if target.upstream_body is not None:
        return await gw.proxy.forward_upstream(request, route, request.path[3:], target.upstream_body, started)
    if not route.ready_endpoints:
        return errors.no_endpoint(route.model)
    return await gw.proxy.forward(request, route, request.path[3:], body, target.prefix, started)


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
