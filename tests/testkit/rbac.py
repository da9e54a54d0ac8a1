"""Kubernetes RBAC, evaluated offline: what a ServiceAccount may do under rendered Roles/Bindings,
and what an HTTP request to the API asks for (the API server's request-info rules).

Used to check the chart's RBAC against the requests the real operator and gateway send to the API
emulator (tests/integration/rbac), both ways: every request allowed, no grant left unused.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable
from typing import Any

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Request:
    """What one API request asks for, in RBAC terms."""

    verb: str
    group: str
    resource: str  # "llmservers" or "llmservers/status"
    namespace: str | None
    name: str | None

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {self.group or 'core'}/{self.resource}{where}" + (f" name={self.name}" if self.name else "")


@dataclasses.dataclass(frozen=True)
class Grant:
    """One (verb, group, resource) a rule grants, in one namespace (None: every namespace)."""

    verb: str
    group: str
    resource: str
    namespace: str | None
    names: tuple[str, ...] = ()


def request_info(method: str, path: str, query: dict[str, str]) -> Request | None:
    """The RBAC attributes of a resource request; None for discovery and other non-resource paths."""
    parts = [part for part in urllib.parse.urlsplit(path).path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces":
        pass  # the namespaces resource itself
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    watching = query.get("watch") in ("true", "1")
    verb = {
        "GET": ("watch" if watching else "get") if name else ("watch" if watching else "list"),
        "HEAD": "get" if name else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method.upper()]
    return Request(verb, group, resource, namespace, name)


def _bound_roles(objects: Iterable[Manifest], account: str, account_namespace: str) -> list[tuple[Manifest, str | None]]:
    """(role object, namespace it applies in; None = all) for every binding naming the account."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    found = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                   and s.get("namespace") == account_namespace for s in subjects):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        key = (ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {ref['kind']}"
        found.append((roles[key], namespace))
    return found


def grants(objects: Iterable[Manifest], account: str, account_namespace: str) -> set[Grant]:
    """Every permission the ServiceAccount has through the rendered objects (wildcards refused)."""
    objects = list(objects)
    result: set[Grant] = set()
    for role, namespace in _bound_roles(objects, account, account_namespace):
        for rule in role.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['kind']} {role['metadata']['name']}: wildcard {field}"
            assert not rule.get("nonResourceURLs"), "non-resource URLs are not expected"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        result.add(Grant(verb, group, resource, namespace, tuple(rule.get("resourceNames") or ())))
    return result


def allowed(request: Request, granted: Iterable[Grant]) -> bool:
    """Whether any grant covers the request (namespace, and resourceNames where a rule has them)."""
    for grant in granted:
        if (grant.verb, grant.group, grant.resource) != (request.verb, request.group, request.resource):
            continue
        if grant.namespace is not None and grant.namespace != request.namespace:
            continue
        if grant.names and request.name not in grant.names:
            continue
        return True
    return False


def used(grant: Grant, requests: Iterable[Request]) -> bool:
    """Whether some request needed this grant."""
    return any(allowed(request, [grant]) for request in requests)
