"""The API emulator's state: objects, resourceVersions, the watch log, garbage collection.

Thread-safe (one re-entrant lock) and synchronous, so the HTTP layer, the kubelet simulator and
tests can all use it directly. Stored objects are never mutated in place: every write stores a
new dict, so watch-log entries can share them safely; readers get deep copies.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime
import random
import string
import threading
import uuid
from collections.abc import Callable
from typing import Any

from testkit import emulator_admission, emulator_names, emulator_patch, emulator_prune, emulator_resources, emulator_select

Obj = dict[str, Any]
Resource = emulator_resources.Resource


class ApiError(Exception):
    """An API failure with the Kubernetes Status shape."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        """The `Status` object the API server answers with."""
        status = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            status["details"] = self.details
        return status


@dataclasses.dataclass(frozen=True)
class Event:
    """One change, as a watch stream reports it."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: Obj


def now() -> str:
    """RFC 3339 UTC with seconds, as the API server writes timestamps."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: Obj) -> Obj:
    return obj.setdefault("metadata", {})


class Store:
    """In-memory objects of every declared resource."""

    def __init__(self, log_size: int = 200_000) -> None:
        self.lock = threading.RLock()
        self.resources: dict[tuple[str, str, str], Resource] = {}
        self._objects: dict[tuple[str, str, str], dict[tuple[str | None, str], Obj]] = collections.defaultdict(dict)
        # the same objects by namespace, so namespaced lists cost what the namespace holds
        self._by_ns: dict[tuple[str, str, str], dict[str | None, dict[str, Obj]]] = collections.defaultdict(dict)
        self._log: dict[tuple[str, str, str], collections.deque[Event]] = {}
        self._floor: dict[tuple[str, str, str], int] = collections.defaultdict(int)
        self._log_size = log_size
        self._rv = 0
        self._uids: set[str] = set()
        self._subscribers: list[Callable[[Event], None]] = []
        # opt-in OwnerReferencesPermissionEnforcement for HTTP writes (see emulator_admission)
        self.owner_references: emulator_admission.OwnerReferencesEnforcement | None = None
        for resource in emulator_resources.BUILTIN:
            self.add_resource(resource)
        for namespace in ("default", "kube-system"):
            self.create(self.resource("", "v1", "namespaces"), None, {"metadata": {"name": namespace}})

    # --- resources -------------------------------------------------------------------------
    def add_resource(self, resource: Resource) -> None:
        """Serves a resource (idempotent)."""
        with self.lock:
            self.resources[resource.key] = resource
            self._log.setdefault(resource.key, collections.deque(maxlen=self._log_size))

    def add_crd(self, crd: Obj) -> None:
        """Serves the versions of a CRD and stores the CRD object itself."""
        for resource in emulator_resources.from_crd(crd):
            self.add_resource(resource)
        crds = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        with self.lock:
            if (None, crd["metadata"]["name"]) not in self._objects[crds.key]:
                self.create(crds, None, crd)

    def resource(self, group: str, version: str, plural: str) -> Resource:
        """The declared resource, else 404."""
        found = self.resources.get((group, version, plural))
        if found is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({group}/{version} {plural})")
        return found

    def by_kind(self, api_version: str, kind: str) -> Resource:
        """The resource of an apiVersion + kind."""
        group, _, version = api_version.rpartition("/")
        for resource in self.resources.values():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        raise ApiError(404, "NotFound", f"no resource for {api_version} {kind}")

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Calls `callback(event)` after every change, under the store lock: it must not block."""
        with self.lock:
            self._subscribers.append(callback)

    # --- reads -----------------------------------------------------------------------------
    def objects(self) -> list[tuple[Resource, Obj]]:
        """Every stored object with its resource (the stored dicts: never to be mutated)."""
        with self.lock:
            return [(self.resources[key], obj) for key, objs in self._objects.items() for obj in objs.values()]

    def has_uid(self, uid: str) -> bool:
        """Whether an object with this uid exists."""
        return uid in self._uids

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion handed out."""
        return self._rv

    def _live(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._objects[resource.key].get((namespace if resource.namespaced else None, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource.plural}.{resource.group or "core"} "{name}" not found')
        return obj

    def get(self, resource: Resource, namespace: str | None, name: str, copied: bool = True) -> Obj:
        """A deep copy of one object (the stored one, never to be mutated, with copied=False), else 404."""
        with self.lock:
            obj = self._live(resource, namespace, name)
            return copy.deepcopy(obj) if copied else obj

    def list(self, resource: Resource, namespace: str | None = None, labels: str | None = None,
             fields: str | None = None, copied: bool = True) -> tuple[list[Obj], int]:
        """Matching objects (sorted by namespace/name; deep copies unless copied=False) and the list's resourceVersion."""
        match_labels, match_fields = emulator_select.label_selector(labels), emulator_select.field_selector(fields)
        with self.lock:
            if namespace is None or not resource.namespaced:
                pool = self._objects[resource.key].items()
            else:
                pool = (((namespace, name), obj) for name, obj in self._by_ns[resource.key].get(namespace, {}).items())
            found = [(key, obj) for key, obj in pool if match_labels(obj) and match_fields(obj)]
            items = [obj for _, obj in sorted(found, key=lambda kv: (kv[0][0] or "", kv[0][1]))]
            return (copy.deepcopy(items) if copied else items), self._rv

    def events_since(self, resource: Resource, rv: int) -> list[Event]:
        """Changes of a resource after `rv`; 410 Gone when the log no longer reaches back that far."""
        with self.lock:
            if rv < self._floor[resource.key]:
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({self._floor[resource.key]})")
            out = []
            for event in reversed(self._log[resource.key]):
                if event.rv <= rv:
                    break
                out.append(event)
            return out[::-1]

    # --- writes ----------------------------------------------------------------------------
    def _commit(self, resource: Resource, kind: str, obj: Obj) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"].get("namespace") if resource.namespaced else None, obj["metadata"]["name"])
        if kind == "DELETED":
            self._objects[resource.key].pop(key, None)
            self._by_ns[resource.key].get(key[0], {}).pop(key[1], None)
            self._uids.discard(obj["metadata"]["uid"])
        else:
            self._objects[resource.key][key] = obj
            self._by_ns[resource.key].setdefault(key[0], {})[key[1]] = obj
            self._uids.add(obj["metadata"]["uid"])
        log = self._log[resource.key]
        if len(log) == log.maxlen:
            self._floor[resource.key] = log[0].rv
        event = Event(self._rv, kind, resource, obj)
        log.append(event)
        for callback in self._subscribers:
            callback(event)
        return obj

    def _ensure_namespace(self, namespace: str) -> None:
        namespaces = self.resources[("", "v1", "namespaces")]
        if (None, namespace) not in self._objects[namespaces.key]:
            self.create(namespaces, None, {"metadata": {"name": namespace}})

    def create(self, resource: Resource, namespace: str | None, body: Obj, keep_status: bool = False,
               context: emulator_admission.WriteContext | None = None) -> Obj:
        """POST: stamps uid, resourceVersion, generation, creationTimestamp; honours generateName; validates names."""
        obj = copy.deepcopy(body)
        meta = _meta(obj)
        with self.lock:
            if resource.namespaced:
                if namespace and meta.get("namespace") not in (None, namespace):
                    raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace on the request")
                namespace = namespace or meta.get("namespace") or "default"
                meta["namespace"] = namespace
                self._ensure_namespace(namespace)
            else:
                meta.pop("namespace", None)
                namespace = None
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, "Invalid", "metadata.name or metadata.generateName is required")
                while True:
                    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                    meta["name"] = emulator_names.generated_name(meta["generateName"], suffix)
                    if (namespace, meta["name"]) not in self._objects[resource.key]:
                        break
            self._refuse(resource, meta["name"], emulator_names.name_problems(resource.kind, meta["name"]))
            if (namespace, meta["name"]) in self._objects[resource.key]:
                raise ApiError(409, "AlreadyExists", f'{resource.plural} "{meta["name"]}" already exists')
            for server_owned in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
                meta.pop(server_owned, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
            obj = self._admitted(resource, obj, None, context)
            if resource.has_status and not keep_status:
                obj.pop("status", None)
            if resource.kind == "Namespace":
                obj.setdefault("status", {"phase": "Active"})
            if resource.kind == "Service" and (obj.get("spec") or {}).get("type") != "ExternalName":
                spec = obj.setdefault("spec", {})
                if not spec.get("clusterIP"):
                    spec["clusterIP"] = f"10.96.{(self._rv // 250) % 250}.{self._rv % 250 + 1}"
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            return copy.deepcopy(self._commit(resource, "ADDED", obj))

    @staticmethod
    def _refuse(resource: Resource, name: str, problems: list[str], code: int = 422) -> None:
        """Raises the API server's Invalid (or Forbidden) answer when there are problems."""
        if not problems:
            return
        if code == 403:
            raise ApiError(403, "Forbidden", "; ".join(problems))
        causes = [{"reason": "FieldValueInvalid", "message": p.split(": ", 1)[-1], "field": p.split(": ", 1)[0]}
                  for p in problems]
        qualified = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
        raise ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {", ".join(problems)}',
                       {"name": name, "group": resource.group, "kind": resource.kind, "causes": causes})

    def _admitted(self, resource: Resource, obj: Obj, old: Obj | None,
                  context: emulator_admission.WriteContext | None) -> Obj:
        """Unknown fields pruned (custom resources), defaults applied, labels validated, ownerRefs checked."""
        name = obj["metadata"].get("name", "")
        if resource.schema is not None:
            obj, removed = emulator_prune.prune(resource.schema, obj)
            if removed and context is not None and context.field_validation == "Strict":
                raise ApiError(400, "BadRequest", "strict decoding error: "
                               + ", ".join(f'unknown field "{path}"' for path in removed))
            if removed and context is not None and context.field_validation == "Warn":
                context.warnings.extend(f'unknown field "{path}"' for path in removed)
            metadata = obj.get("metadata")
            obj = emulator_resources.apply_defaults(resource.schema, obj)
            obj["metadata"] = metadata
        self._refuse(resource, name, emulator_names.object_problems(resource.kind, obj))
        if self.owner_references is not None and context is not None and context.user is not None:
            def owner_plural(api_version: str, kind: str) -> tuple[str, str] | None:
                try:
                    found = self.by_kind(api_version, kind)
                except ApiError:
                    return None
                return found.group, found.plural

            rbac = lambda: [o for r, o in self.objects() if r.group == "rbac.authorization.k8s.io"]
            self._refuse(resource, name, emulator_admission.problems(
                self.owner_references, context.user, resource.kind, resource.plural, resource.group,
                obj["metadata"].get("namespace"), name, old, obj, rbac, owner_plural), code=403)
        return obj

    def _update(self, resource: Resource, namespace: str | None, name: str, candidate: Obj,
                subresource: str | None, old: Obj, context: emulator_admission.WriteContext | None = None) -> Obj:
        if subresource == "status":
            new = copy.deepcopy(old)
            if candidate.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = candidate["status"]
        else:
            new = candidate
            if resource.has_status:
                if old.get("status") is None:
                    new.pop("status", None)
                else:
                    new["status"] = copy.deepcopy(old["status"])
            meta, old_meta = _meta(new), old["metadata"]
            for fixed in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp", "generation"):
                if fixed in old_meta:
                    meta[fixed] = old_meta[fixed]
                else:
                    meta.pop(fixed, None)
            if resource.kind == "Service":
                for ip in ("clusterIP", "clusterIPs"):
                    if ip in (old.get("spec") or {}) and not (new.get("spec") or {}).get(ip):
                        new.setdefault("spec", {})[ip] = old["spec"][ip]
            spec_of = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}
            if spec_of(new) != spec_of(old):
                meta["generation"] = int(old_meta.get("generation") or 0) + 1
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        new = self._admitted(resource, new, old, context)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return copy.deepcopy(old)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit(resource, "MODIFIED", new)
            return self._remove(resource, new)
        return copy.deepcopy(self._commit(resource, "MODIFIED", new))

    def replace(self, resource: Resource, namespace: str | None, name: str, body: Obj,
                subresource: str | None = None, context: emulator_admission.WriteContext | None = None) -> Obj:
        """PUT, with the optimistic-concurrency check when the body carries a resourceVersion."""
        with self.lock:
            old = self._live(resource, namespace, name)
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource.plural} "{name}": '
                                                "the object has been modified; please apply your changes to the latest version and try again")
            return self._update(resource, namespace, name, copy.deepcopy(body), subresource, old, context)

    def patch(self, resource: Resource, namespace: str | None, name: str, patch: Any, content_type: str,
              subresource: str | None = None, context: emulator_admission.WriteContext | None = None) -> Obj:
        """PATCH: json-patch (failed `test` → 422), else merge semantics (see emulator_patch)."""
        with self.lock:
            old = self._live(resource, namespace, name)
            try:
                if content_type.startswith("application/json-patch+json"):
                    candidate = emulator_patch.json_patch(old, patch)
                else:
                    rv = ((patch or {}).get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
                    if rv and rv != old["metadata"]["resourceVersion"]:
                        raise ApiError(409, "Conflict", f'the object "{name}" has been modified')
                    candidate = emulator_patch.merge_patch(copy.deepcopy(old), patch)
            except emulator_patch.PatchError as exc:
                raise ApiError(422, "Invalid", f"the patch cannot be applied: {exc}") from None
            return self._update(resource, namespace, name, candidate, subresource, old, context)

    def delete(self, resource: Resource, namespace: str | None, name: str, propagation: str = "Background",
               precondition_rv: str | None = None) -> Obj:
        """DELETE: objects with finalizers (or deleted in Foreground/Orphan) are marked, else removed.

        Dependents are left to the garbage collector (emulator_gc), which runs asynchronously.
        """
        with self.lock:
            old = self._live(resource, namespace, name)
            if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'precondition failed for "{name}"')
            if old["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(old)
            finalizers = list(old["metadata"].get("finalizers") or [])
            extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
            if extra and resource.kind != "Namespace" and extra not in finalizers:
                finalizers.append(extra)
            if finalizers:
                marked = copy.deepcopy(old)
                marked["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0, finalizers=finalizers)
                return copy.deepcopy(self._commit(resource, "MODIFIED", marked))
            return self._remove(resource, copy.deepcopy(old))

    def _remove(self, resource: Resource, obj: Obj) -> Obj:
        gone = copy.deepcopy(self._commit(resource, "DELETED", obj))
        if resource.kind == "Namespace":
            for other in list(self.resources.values()):
                if other.namespaced:
                    for (ns, other_name) in [key for key in self._objects[other.key] if key[0] == obj["metadata"]["name"]]:
                        self._remove(other, copy.deepcopy(self._objects[other.key][(ns, other_name)]))
        return gone
