"""The loopback control endpoint of a running `llmserver up`.

- `POST /servers/{name}/unload|load` and `GET /state`: what `llmserver unload-model --local`,
  `load-model --local` and `list-loaded --local` use; they need the per-run token from the
  owner-only state file.
- `/wake/{name}/...`: while a model is unloaded (idle or LRU) or still loading, the gateway config
  points the model at this path: the request (re)starts the model, waits until it is ready and is
  then passed through to it, streaming included. Later requests go to the runtime directly.
- `POST /wakeup/{name}`: the `wakeUrl` of an autoscaled model in `gateway.yaml`; the gateway holds
  the request itself and calls this to start the load; it answers at once (202 when the model is
  ready or on its way, 409 when it cannot come back by itself: failed or unloaded by `unload-model`).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.web as web

from llmserver_api.protocol import errors
from llmserver_cli.hosting import hosted
from llmserver_cli.local import state

if TYPE_CHECKING:
    from llmserver_cli.local import supervisor as supervisor_module

Runner = web.AppRunner
TOKEN_HEADER = "X-Llmserver-Token"
_SUPERVISOR: web.AppKey[Any] = web.AppKey("supervisor")
_HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te", "trailer"}
WAKE_TIMEOUT_S = 600.0


def _error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    """OpenAI's one error shape (llmserver_api.protocol.errors), like the gateway and the runtime."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    error = errors.APIError(status, message, type=kind, param=param, code=code)
    return web.Response(status=status, body=error.body(), content_type="application/json")


def _authorised(request: web.Request) -> bool:
    token: str = request.app[_SUPERVISOR].token
    return secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token)


async def _state(request: web.Request) -> web.Response:
    if not _authorised(request):
        return _error(401, "missing or wrong control token", "unauthorized")
    snapshot = request.app[_SUPERVISOR].snapshot()
    return web.json_response(snapshot.model_dump(exclude={"token"}))


async def _action(request: web.Request) -> web.Response:
    if not _authorised(request):
        return _error(401, "missing or wrong control token", "unauthorized")
    sup: supervisor_module.Supervisor = request.app[_SUPERVISOR]
    name = request.match_info["name"]
    snapshot = sup.snapshot().server(name)
    unit = sup.engine.units.get(snapshot.name) if snapshot else None
    if unit is None:
        return _error(404, f"no server or model named {name!r} in this `llmserver up`", "not_found", "name")
    if request.match_info["action"] == "unload":
        await sup.engine.unload(unit, "unloaded by `llmserver unload-model`", wakeable=False)
    else:
        sup.engine.load(unit)
    return web.json_response(state.server_state(unit).model_dump())


def _models(unit: hosted.Hosted) -> dict[str, Any]:
    """What the runtime's /v1/models will list once loaded: the model and its adapters."""
    model = unit.model
    data = [{"id": model, "object": "model", "created": 0, "owned_by": "llmserver"}]
    data += [{"id": f"{model}:{adapter.name}", "object": "model", "created": 0, "owned_by": "llmserver",
              "parent": model, "root": model} for adapter in unit.server.spec.adapters]  # fmt: skip
    return {"object": "list", "data": data}


async def _wake(request: web.Request) -> web.StreamResponse:
    sup: supervisor_module.Supervisor = request.app[_SUPERVISOR]
    unit = sup.engine.units.get(request.match_info["name"])
    if unit is None:
        return _error(404, "unknown model", "model_not_found", "model")
    if request.method == "GET" and request.match_info["tail"] == "v1/models":
        return web.json_response(_models(unit))  # the gateway's adapter probe: answered without a load
    if not await sup.engine.ensure_loaded(unit, WAKE_TIMEOUT_S) or unit.base_url is None:
        return _error(503, f"model {unit.model!r} is not available: {unit.message}", "model_not_ready", "model")
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    url = f"{unit.base_url}/{request.match_info['tail']}"
    http = request.app[_HTTP]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with http.request(
        request.method, url, data=body, headers=headers, params=request.query, timeout=timeout
    ) as upstream:
        response = web.StreamResponse(
            status=upstream.status,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        unit.touch()
        return response


async def _wakeup(request: web.Request) -> web.Response:
    sup: supervisor_module.Supervisor = request.app[_SUPERVISOR]
    unit = sup.engine.units.get(request.match_info["name"])
    if unit is None:
        return _error(404, "unknown model", "model_not_found", "model")
    if not sup.engine.wake(unit):
        why = f"model {unit.model!r} does not start on a request: {unit.message}"
        return _error(409, why, "model_not_ready", "model")
    return web.json_response({"name": unit.key, "phase": unit.phase}, status=202)


async def start(sup: supervisor_module.Supervisor, http: aiohttp.ClientSession) -> tuple[Runner, str]:
    """Serves the control app on a free loopback port; returns the runner and its base URL."""
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app[_SUPERVISOR] = sup
    app[_HTTP] = http
    app.router.add_get("/state", _state)
    app.router.add_post("/servers/{name}/{action:unload|load}", _action)
    app.router.add_route("*", "/wake/{name}/{tail:.*}", _wake)
    app.router.add_post("/wakeup/{name}", _wakeup)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
