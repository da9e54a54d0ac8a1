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
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import aiohttp.abc
import prometheus_client
from aiohttp import web

from llmserver_gateway import (
    adapter_probe, auth, balancing, bodies, cold, demand, errors, guard, hold, metrics, proxy, settings, table,
    targets, wake,
)
from llmserver_api.protocol import errors as protocol_errors
from llmserver_api.protocol import models as protocol_models

log = logging.getLogger("llmserver.gateway")

SERVED_BY_HEADER = "x-llmserver-served-by"
_GET_PATHS = ("/v1/models", "/health", "/ready", "/metrics", "/internal/load")
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
    demand: demand.Demand = dataclasses.field(default_factory=demand.Demand)
    waker: wake.Waker = dataclasses.field(default_factory=wake.Waker)
    cold: cold.ColdPath = dataclasses.field(init=False)
    adapters: adapter_probe.AdapterProbe = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.balancer = balancing.Balancer(self.config.load_factor)
        holds = hold.Holds(self.routes, self.metrics)

        def adapter_held() -> bool:
            return any((r := self.routes.get(model)) is not None and r.adapter_of is not None for model in holds.held)

        self.adapters = adapter_probe.AdapterProbe(
            self.routes, self.config.adapter_probe_seconds, self.config.adapter_probe_timeout, adapter_held)
        self.cold = cold.ColdPath(
            self.routes, holds, self.waker, self.metrics, self.config.prefix_chars, self.config.max_json_depth,
            self.adapters.hurry, self.demand.refused)


GATEWAY = web.AppKey("gateway", Gateway)
_SERVED_BY = "llmserver_served_by"  # request key: the fallback model that answers this request


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
    app.on_response_prepare.append(_served_by)
    for path in PROXIED_PATHS:
        app.router.add_post(path, _proxied)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{model:.+}", _model)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/internal/load", _load)
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
    gw.waker.session = sessions[0]  # wake URLs come from the static config only: the operator's own
    probe = functools.partial(gw.adapters.run, sessions[0])  # replicas: the trusted client
    tasks = [asyncio.create_task(_supervise(run)) for run in (*gw.background, probe)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gw.waker.close()
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
        route, target = _route(gw, body, key)
        label = route.model
        response = await _serve(gw, request, route, target, body, key, started)
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


def _route(gw: Gateway, body: bytes, key: auth.ApiKey | None) -> tuple[table.Route, targets.Target | None]:
    """The route of the body's `model` (404 when none), after the key's model and rate checks, and
    its target when it can answer now (None when it is cold: a held request keeps only its bytes)."""
    payload = bodies.parse(body, gw.config.max_json_depth)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise protocol_errors.invalid_request("`model` is required and must be a string.", param="model")
    if key is not None:
        gw.keys.admit(key, model)
    route = gw.routes.get(model)
    if route is None:
        raise protocol_errors.model_not_found(model)
    if not route.available:
        return route, None
    return route, targets.build(route, payload, body, gw.config.prefix_chars)


async def _serve(
    gw: Gateway, request: web.Request, route: table.Route, target: targets.Target | None, body: bytes,
    key: auth.ApiKey | None, started: float,
) -> web.StreamResponse:
    """Forwards to the route, or for a cold one where `cold` says; counted as demand meanwhile."""
    count = gw.demand.enter(route)
    also: demand.Count | None = None
    try:
        if target is None:
            target = await gw.cold.target(route, body, key, count)
        if target.served_by is not None:
            request[_SERVED_BY] = target.served_by
            also = gw.demand.enter(target.route)  # the fallback's own replicas serve it too
        return await _forward(gw, request, target, started)
    finally:
        if also is not None:
            gw.demand.leave(also)
        gw.demand.leave(count)


async def _forward(gw: Gateway, request: web.Request, target: targets.Target, started: float) -> web.StreamResponse:
    assert gw.proxy is not None
    route = target.route
    if route.upstream is not None:
        return await gw.proxy.forward_upstream(request, route, request.path[3:], target.body, started)
    if not route.ready_endpoints:
        return errors.no_endpoint(route.model)
    return await gw.proxy.forward(request, route, request.path[3:], target.body, target.prefix, started)


async def _served_by(request: web.Request, response: web.StreamResponse) -> None:
    """Names the fallback model on every response it answered (set before the headers go out)."""
    served_by = request.get(_SERVED_BY)
    if served_by is not None:
        response.headers[SERVED_BY_HEADER] = served_by


async def _load(request: web.Request) -> web.Response:
    """Demand per LLMServer for the operator's autoscaler (docs/contracts.md); no auth, like /metrics."""
    gw = request.app[GATEWAY]
    return web.json_response({"servers": gw.demand.snapshot(gw.routes.routes())})


async def _models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        key = gw.keys.authenticate(request.headers.get("Authorization"))
    except protocol_errors.APIError as exc:
        return errors.to_response(exc)
    listing = protocol_models.ModelList(
        data=[
            protocol_models.Model(id=route.model, created=gw.started_at, owned_by="llmserver",
                                  parent=route.adapter_of, root=route.adapter_of)
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
        route = gw.routes.get(name)
        if route is None or (key is not None and not key.allows(name)):
            raise protocol_errors.model_not_found(name)
    except protocol_errors.APIError as exc:
        return errors.to_response(exc)
    model = protocol_models.Model(id=name, created=gw.started_at, owned_by="llmserver",
                                  parent=route.adapter_of, root=route.adapter_of)
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
    if request.path in PROXIED_PATHS or request.path in _GET_PATHS:
        return errors.to_response(protocol_errors.method_not_allowed(request.method, request.path))
    return errors.to_response(protocol_errors.not_found(request.path))
