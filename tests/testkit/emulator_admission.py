"""Who writes, and the OwnerReferencesPermissionEnforcement admission check of the API emulator.

Why: on clusters that enable the `OwnerReferencesPermissionEnforcement` admission plugin
(OpenShift, hardened installs), setting `blockOwnerDeletion: true` on an ownerReference (kopf.adopt
does) is refused unless the writer may `update` the owner's `finalizers` subresource, and changing
ownerReferences at all needs `delete` on the object. The emulator has no authentication, so this
is opt-in: `KubeEmulator(owner_references=OwnerReferencesEnforcement(users={token: user}, ...))`
maps bearer tokens to user names and allows a request when the allow-list grants it or, with
`rbac=True`, when the Roles/ClusterRoles stored in the emulator and bound to that ServiceAccount
user grant it. Writes made directly on the store (tests, the kubelet simulator) are not checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

Manifest = dict[str, Any]
# (user, verb, API group, resource): "*" matches anything in a position.
Permission = tuple[str, str, str, str]


@dataclasses.dataclass
class WriteContext:
    """One HTTP write: the caller, the field validation it asked for, and warnings to answer with."""

    user: str | None = None
    field_validation: str = "Warn"  # Ignore | Warn | Strict (the API server's default is Warn)
    warnings: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class OwnerReferencesEnforcement:
    """Opt-in ownerReference permission checks (see the module docstring)."""

    users: Mapping[str, str] = dataclasses.field(default_factory=dict)  # bearer token -> user name
    allowed: Collection[Permission] = ()
    rbac: bool = False

    def user(self, authorization: str | None) -> str:
        """The user a request's Authorization header authenticates as (unknown tokens: anonymous)."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        return self.users.get(token, "system:anonymous")


def _matches(granted: str, wanted: str) -> bool:
    return granted == "*" or granted == wanted


def _rbac_allows(objects: Iterable[Manifest], user: str, verb: str, group: str, resource: str,
                 namespace: str | None, name: str | None) -> bool:
    """RBAC for a ServiceAccount user (system:serviceaccount:<ns>:<name>) from stored Roles and bindings."""
    parts = user.split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        return False
    account_ns, account = parts[2], parts[3]
    objects = list(objects)
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects
             if o["kind"] in ("Role", "ClusterRole")}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound_ns = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        if bound_ns is not None and bound_ns != namespace:
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account and s.get("namespace") == account_ns
                   for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        role = roles.get((ref.get("kind"), bound_ns if ref.get("kind") == "Role" else None, ref.get("name")))
        for rule in (role or {}).get("rules") or []:
            if (any(_matches(g, group) for g in rule.get("apiGroups") or [])
                    and any(_matches(r, resource) for r in rule.get("resources") or [])
                    and any(_matches(v, verb) for v in rule.get("verbs") or [])
                    and (not rule.get("resourceNames") or name in rule["resourceNames"])):
                return True
    return False


def _owner_key(ref: Manifest) -> tuple[Any, ...]:
    return (ref.get("apiVersion"), ref.get("kind"), ref.get("name"), ref.get("uid"))


def problems(policy: OwnerReferencesEnforcement, user: str, kind: str, plural: str, group: str, namespace: str | None,
             name: str, old: Manifest | None, new: Manifest, rbac_objects: Callable[[], Iterable[Manifest]],
             owner_plural: Callable[[str, str], tuple[str, str] | None]) -> list[str]:
    """Why this write is forbidden (empty: allowed). `owner_plural(apiVersion, kind)` -> (group, plural)."""
    def allows(verb: str, res_group: str, resource: str, res_name: str | None) -> bool:
        if any(_matches(u, user) and _matches(v, verb) and _matches(g, res_group) and _matches(r, resource)
               for u, v, g, r in policy.allowed):
            return True
        return policy.rbac and _rbac_allows(rbac_objects(), user, verb, res_group, resource, namespace, res_name)

    new_refs = (new.get("metadata") or {}).get("ownerReferences") or []
    old_refs = ((old or {}).get("metadata") or {}).get("ownerReferences") or []
    out: list[str] = []
    if new_refs != old_refs and not allows("delete", group, plural, name):
        out.append(f'{kind} "{name}" is forbidden: cannot set an ownerRef on a resource you can\'t delete: '
                   f'User "{user}" cannot delete resource "{plural}" in API group "{group}"'
                   + (f' in the namespace "{namespace}"' if namespace else ""))
    blocking_before = {_owner_key(r) for r in old_refs if r.get("blockOwnerDeletion")}
    for ref in new_refs:
        if not ref.get("blockOwnerDeletion") or _owner_key(ref) in blocking_before:
            continue
        found = owner_plural(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        owner_group, owner_resource = found or (str(ref.get("apiVersion", "")).rpartition("/")[0], "")
        if found is None or not allows("update", owner_group, f"{owner_resource}/finalizers", ref.get("name")):
            out.append(f'{kind} "{name}" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a '
                       f'resource you can\'t set finalizers on: User "{user}" cannot update resource '
                       f'"{owner_resource or ref.get("kind")}/finalizers" in API group "{owner_group}"'
                       + (f' in the namespace "{namespace}"' if namespace else ""))
    return out
