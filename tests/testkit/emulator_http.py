"""The API emulator's HTTP face (aiohttp): discovery, CRUD, watch streams and kubectl tables."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
from typing import Any

import aiohttp.web
import yaml

from testkit import emulator_admission, emulator_faults, emulator_scale, emulator_select, emulator_store, emulator_tables

Store = emulator_store.Store
ApiError = emulator_store.ApiError
Resource = emulator_store.Resource


@dataclasses.dataclass
class Target:
    """What a request path addresses."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclasses.dataclass(frozen=True)
class Logged:
    """One request, for tests that count API calls: `verb` and `kind` are empty for discovery."""

    method: str
    path: str
    content_type: str
    verb: str = ""
    kind: str = ""  # "Deployment", "LLMServer/status"
    agent: str = ""  # the User-Agent's product ("kopf", "OpenAPI-Generator", "kubectl")


def verb_of(method: str, target: Target, watching: bool) -> str:
    """The RBAC verb of a request (get, list, watch, create, update, patch, delete, deletecollection)."""
    if method in ("GET", "HEAD"):
        return "watch" if watching else ("get" if target.name else "list")
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


class Api:
    """Routes requests to the store and fans store events out to watch streams."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, faults: emulator_faults.Faults | None = None) -> None:
        self.store = store
        self.loop = loop
        self.requests: list[Logged] = []
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()  # (verb, kind) -> count
        self.faults = faults or emulator_faults.Faults()
        self.faults.on_drop(self._drop_watches)
        # open watches: resource key -> queue -> the namespace it watches (None: all)
        self._watchers: dict[tuple[str, str, str], dict[asyncio.Queue[emulator_store.Event | None], str | None]] = {}
        store.subscribe(self._on_event)

    def _on_event(self, event: emulator_store.Event) -> None:
        queues = self._watchers.get(event.resource.key)
        if queues:
            self.loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: emulator_store.Event) -> None:
        for queue in list(self._watchers.get(event.resource.key, ())):
            queue.put_nowait(event)

    def close(self) -> None:
        """Ends every open watch stream (on the loop thread), so shutdown does not wait for clients."""
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)

    def _drop_watches(self, wanted: Any) -> int:
        """Closes the open watches `wanted(kind, plural, namespace)` selects (from any thread)."""
        chosen = [queue for key, queues in list(self._watchers.items()) for queue, namespace in list(queues.items())
                  if wanted(self.store.resources[key].kind, key[2], namespace)]
        for queue in chosen:
            self.loop.call_soon_threadsafe(queue.put_nowait, None)
        return len(chosen)

    def app(self) -> aiohttp.web.Application:
        """The aiohttp application serving every path."""
        app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # --- routing ---------------------------------------------------------------------------
    def _target(self, parts: list[str]) -> Target | None:
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in self.store.resources:
            namespace, rest = rest[1], rest[2:]
        resource = self.store.resource(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        subresource = "/".join(rest[2:]) or None
        if subresource is not None and subresource not in resource.subresources:
            raise ApiError(404, "NotFound", f"{resource.plural} has no subresource {subresource!r}")
        return Target(resource, namespace, name, subresource)

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        """Entry point of every request: discovery, else faults, then CRUD or a watch."""
        parts = [part for part in request.path.split("/") if part]
        agent = request.headers.get("User-Agent", "").split("/", 1)[0]
        content_type = request.headers.get("Content-Type", "")
        try:
            discovery = self._discovery(parts)
            if discovery is not None:
                self.requests.append(Logged(request.method, request.path, content_type, agent=agent))
                return _json(discovery)
            target = self._target(parts)
            if target is None:
                self.requests.append(Logged(request.method, request.path, content_type, agent=agent))
                raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.path}")
            watching = request.query.get("watch", "").lower() in ("true", "1")
            verb = verb_of(request.method, target, watching)
            kind = target.resource.kind + (f"/{target.subresource}" if target.subresource else "")
            self.requests.append(Logged(request.method, request.path, content_type, verb, kind, agent))
            self.calls[(verb, kind)] += 1
            fault = self.faults.take(verb, target.resource.kind, target.resource.plural, target.namespace, target.name,
                                     target.subresource)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                return self._injected(fault)
            if watching:
                return await self._watch(request, target, fault.drop_after if fault is not None else None)
            return await self._crud(request, target)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except emulator_select.SelectorError as exc:
            return _json(ApiError(400, "BadRequest", str(exc)).status(), 400)

    @staticmethod
    def _injected(fault: emulator_faults.Fault) -> aiohttp.web.Response:
        code = fault.status or 500
        message = fault.message or f"injected fault: {code}"
        response = _json(ApiError(code, fault.reason(), message, {"retryAfterSeconds": int(fault.retry_after)}
                                  if fault.retry_after else None).status(), code)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(int(fault.retry_after) if fault.retry_after >= 1 else 1)
        return response

    def _context(self, request: aiohttp.web.Request) -> emulator_admission.WriteContext:
        policy = self.store.owner_references
        user = policy.user(request.headers.get("Authorization")) if policy is not None else None
        return emulator_admission.WriteContext(user=user, field_validation=request.query.get("fieldValidation") or "Warn")

    @staticmethod
    def _written(body: Any, context: emulator_admission.WriteContext, status: int = 200) -> aiohttp.web.Response:
        """The answer to a write, with the API server's Warning headers (pruned unknown fields)."""
        response = _json(body, status)
        for warning in context.warnings:
            response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        return response

    # --- discovery -------------------------------------------------------------------------
    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        entries = []
        for res in sorted(self.store.resources.values(), key=lambda r: r.plural):
            if res.group != group or res.version != version:
                continue
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
                     "verbs": verbs}
            if res.short_names:
                entry["shortNames"] = list(res.short_names)
            if res.categories:
                entry["categories"] = list(res.categories)
            entries.append(entry)
            for sub in res.subresources:
                entries.append({"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                                "kind": res.kind, "verbs": ["get", "patch", "update"]}
                               | ({"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale" else {}))
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": entries}

    def _groups(self) -> list[dict[str, Any]]:
        versions: dict[str, list[str]] = {}
        for res in self.store.resources.values():
            if res.group and res.version not in versions.setdefault(res.group, []):
                versions[res.group].append(res.version)
        return [{"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{group}/{vs[0]}", "version": vs[0]}}
                for group, vs in sorted(versions.items())]

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if not parts:
            return {"paths": ["/api", "/api/v1", "/apis", "/version"]}
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return {"status": "ok"}
        if parts == ["version"]:
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-llmserver-emulator", "platform": "linux/amd64"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": self._groups()}
        if len(parts) == 2 and parts[0] == "apis":
            for group in self._groups():
                if group["name"] == parts[1]:
                    return {"kind": "APIGroup", "apiVersion": "v1", **group}
            raise ApiError(404, "NotFound", f"group {parts[1]} not found")
        if len(parts) == 3 and parts[0] == "apis":
            listing = self._resource_list(parts[1], parts[2])
            if not listing["resources"]:
                raise ApiError(404, "NotFound", f"{parts[1]}/{parts[2]} not found")
            return listing
        return None

    # --- CRUD ------------------------------------------------------------------------------
    async def _body(self, request: aiohttp.web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            if "yaml" in request.headers.get("Content-Type", ""):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"cannot parse the body: {exc}") from None

    async def _crud(self, request: aiohttp.web.Request, t: Target) -> aiohttp.web.Response:
        store, method, query = self.store, request.method, request.query
        if t.name is None:
            if method == "GET":
                items, rv = store.list(t.resource, t.namespace, query.get("labelSelector"), query.get("fieldSelector"),
                                       copied=False)
                if "as=Table" in request.headers.get("Accept", ""):
                    return _json(emulator_tables.table(t.resource, items, rv))
                return _json({"apiVersion": t.resource.api_version, "kind": f"{t.resource.kind}List",
                              "metadata": {"resourceVersion": str(rv)}, "items": items})
            if method == "POST":
                body = await self._body(request)
                if query.get("dryRun"):
                    return _json(body, 201)
                context = self._context(request)
                return self._written(store.create(t.resource, t.namespace, body or {}, context=context), context, 201)
            if method == "DELETE":
                items, _ = store.list(t.resource, t.namespace, query.get("labelSelector"), query.get("fieldSelector"))
                for item in items:
                    with contextlib.suppress(ApiError):
                        store.delete(t.resource, t.namespace, item["metadata"]["name"])
                return _json({"apiVersion": t.resource.api_version, "kind": f"{t.resource.kind}List", "items": items})
        elif t.subresource == "scale":
            body = await self._body(request) if method in ("PUT", "PATCH") else None
            return _json(emulator_scale.serve(store, t.resource, t.namespace, t.name, method, body,
                                              request.headers.get("Content-Type", ""), self._context(request)))
        else:
            if method == "GET":
                obj = store.get(t.resource, t.namespace, t.name, copied=False)
                if "as=Table" in request.headers.get("Accept", ""):
                    return _json(emulator_tables.table(t.resource, [obj], store.resource_version))
                return _json(obj)
            if method == "PUT":
                context = self._context(request)
                body = await self._body(request) or {}
                return self._written(store.replace(t.resource, t.namespace, t.name, body, t.subresource, context), context)
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "application/merge-patch+json")
                body = await self._body(request)
                context = self._context(request)
                if content_type.startswith("application/apply-patch"):
                    try:
                        store.get(t.resource, t.namespace, t.name)
                    except ApiError:
                        created = store.create(t.resource, t.namespace,
                                               {**body, "metadata": {**body.get("metadata", {}), "name": t.name}}, context=context)
                        return self._written(created, context, 201)
                return self._written(store.patch(t.resource, t.namespace, t.name, body, content_type, t.subresource, context),
                                     context)
            if method == "DELETE":
                options = await self._body(request) or {}
                propagation = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
                precondition = (options.get("preconditions") or {}).get("resourceVersion")
                return _json(store.delete(t.resource, t.namespace, t.name, propagation, precondition))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    # --- watch -----------------------------------------------------------------------------
    async def _watch(self, request: aiohttp.web.Request, t: Target, drop_after: float | None = None) -> aiohttp.web.StreamResponse:
        query = request.query
        match_labels = emulator_select.label_selector(query.get("labelSelector"))
        match_fields = emulator_select.field_selector(query.get("fieldSelector"))
        if t.name is not None:
            by_name = emulator_select.field_selector(f"metadata.name={t.name}")
            match_fields = lambda obj, base=match_fields: base(obj) and by_name(obj)

        def wanted(obj: dict[str, Any]) -> bool:
            namespace_ok = t.namespace is None or obj["metadata"].get("namespace") == t.namespace
            return namespace_ok and match_labels(obj) and match_fields(obj)

        queue: asyncio.Queue[emulator_store.Event | None] = asyncio.Queue()
        since = query.get("resourceVersion")
        initial: list[dict[str, Any]] = []
        with self.store.lock:
            if since and since != "0":
                try:
                    backlog = self.store.events_since(t.resource, int(since))
                except ApiError as exc:
                    backlog, initial = [], [{"type": "ERROR", "object": exc.status()}]
                initial += [{"type": e.type, "object": e.obj} for e in backlog if wanted(e.obj)]
                last = max([int(since)] + [e.rv for e in backlog])
            else:
                items, last = self.store.list(t.resource, t.namespace)
                initial = [{"type": "ADDED", "object": obj} for obj in items if wanted(obj)]
            self._watchers.setdefault(t.resource.key, {})[queue] = t.namespace
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        timeout = float(query.get("timeoutSeconds") or 1800)
        if drop_after is not None:  # an injected fault: the server closes this stream early
            self.loop.call_later(drop_after, queue.put_nowait, None)
        try:
            async with asyncio.timeout(timeout):
                for event in initial:
                    await response.write(json.dumps(event).encode() + b"\n")
                if initial and initial[0]["type"] == "ERROR":
                    return response
                while True:
                    event = await queue.get()
                    if event is None:
                        break
                    if event.rv <= last or not wanted(event.obj):
                        continue
                    last = event.rv
                    await response.write(json.dumps({"type": event.type, "object": event.obj}).encode() + b"\n")
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._watchers.get(t.resource.key, {}).pop(queue, None)
        return response
