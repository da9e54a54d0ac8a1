"""The API emulator's HTTP face (aiohttp): discovery, CRUD, watch streams and kubectl tables."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
from typing import Any

import aiohttp.web
import yaml

from testkit import emulator_select, emulator_store

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
    """One request, for tests that count API writes."""

    method: str
    path: str
    content_type: str


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def _age(timestamp: str) -> str:
    """kubectl's AGE text (k8s.io/apimachinery duration.HumanDuration), computed server-side as for CRDs."""
    started = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - started).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


class Api:
    """Routes requests to the store and fans store events out to watch streams."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.requests: list[Logged] = []
        self._watchers: dict[tuple[str, str, str], set[asyncio.Queue[emulator_store.Event | None]]] = {}
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
        """Entry point of every request."""
        self.requests.append(Logged(request.method, request.path, request.headers.get("Content-Type", "")))
        parts = [part for part in request.path.split("/") if part]
        try:
            discovery = self._discovery(parts)
            if discovery is not None:
                return _json(discovery)
            target = self._target(parts)
            if target is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.path}")
            if request.method == "GET" and request.query.get("watch", "").lower() in ("true", "1"):
                return await self._watch(request, target)
            return await self._crud(request, target)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except emulator_select.SelectorError as exc:
            return _json(ApiError(400, "BadRequest", str(exc)).status(), 400)

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
                                "kind": res.kind, "verbs": ["get", "patch", "update"]})
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
                    return _json(self._table(t.resource, items, rv))
                return _json({"apiVersion": t.resource.api_version, "kind": f"{t.resource.kind}List",
                              "metadata": {"resourceVersion": str(rv)}, "items": items})
            if method == "POST":
                body = await self._body(request)
                if query.get("dryRun"):
                    return _json(body, 201)
                return _json(store.create(t.resource, t.namespace, body or {}), 201)
            if method == "DELETE":
                items, _ = store.list(t.resource, t.namespace, query.get("labelSelector"), query.get("fieldSelector"))
                for item in items:
                    with contextlib.suppress(ApiError):
                        store.delete(t.resource, t.namespace, item["metadata"]["name"])
                return _json({"apiVersion": t.resource.api_version, "kind": f"{t.resource.kind}List", "items": items})
        elif t.subresource == "scale":
            return _json(self._scale(t, await self._body(request) if method in ("PUT", "PATCH") else None))
        else:
            if method == "GET":
                obj = store.get(t.resource, t.namespace, t.name, copied=False)
                if "as=Table" in request.headers.get("Accept", ""):
                    return _json(self._table(t.resource, [obj], store.resource_version))
                return _json(obj)
            if method == "PUT":
                return _json(store.replace(t.resource, t.namespace, t.name, await self._body(request) or {}, t.subresource))
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "application/merge-patch+json")
                body = await self._body(request)
                if content_type.startswith("application/apply-patch"):
                    try:
                        store.get(t.resource, t.namespace, t.name)
                    except ApiError:
                        return _json(store.create(t.resource, t.namespace, {**body, "metadata": {**body.get("metadata", {}), "name": t.name}}), 201)
                return _json(store.patch(t.resource, t.namespace, t.name, body, content_type, t.subresource))
            if method == "DELETE":
                options = await self._body(request) or {}
                propagation = options.get("propagationPolicy") or query.get("propagationPolicy") or "Background"
                precondition = (options.get("preconditions") or {}).get("resourceVersion")
                return _json(store.delete(t.resource, t.namespace, t.name, propagation, precondition))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _scale(self, t: Target, body: Any) -> dict[str, Any]:
        """The autoscaling/v1 Scale view of spec.replicas (kubectl scale, HPAs)."""
        assert t.name is not None
        if body is not None:
            replicas = ((body or {}).get("spec") or {}).get("replicas")
            if replicas is not None:
                self.store.patch(t.resource, t.namespace, t.name, {"spec": {"replicas": replicas}}, "application/merge-patch+json")
        obj = self.store.get(t.resource, t.namespace, t.name)
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {key: obj["metadata"][key] for key in ("name", "namespace", "uid", "resourceVersion") if key in obj["metadata"]},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))}}

    def _table(self, resource: Resource, items: list[dict[str, Any]], rv: int) -> dict[str, Any]:
        columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
        paths = []
        for column in resource.printer_columns or ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},):
            columns.append({"name": column["name"], "type": column.get("type", "string"), "format": column.get("format", ""),
                            "description": column.get("description", ""), "priority": column.get("priority", 0)})
            paths.append(column["jsonPath"])
        rows = []
        for obj in items:
            cells: list[Any] = [obj["metadata"]["name"]]
            for path in paths:
                value = emulator_select.json_path(obj, path)
                if value is not None and path == ".metadata.creationTimestamp":
                    value = _age(value)
                cells.append("<none>" if value is None else value)
            rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                    "metadata": obj["metadata"]}})
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(rv)},
                "columnDefinitions": columns, "rows": rows}

    # --- watch -----------------------------------------------------------------------------
    async def _watch(self, request: aiohttp.web.Request, t: Target) -> aiohttp.web.StreamResponse:
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
            self._watchers.setdefault(t.resource.key, set()).add(queue)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        timeout = float(query.get("timeoutSeconds") or 1800)
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
            self._watchers.get(t.resource.key, set()).discard(queue)
        return response
