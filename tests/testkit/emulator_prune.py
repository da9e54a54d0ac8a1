"""Unknown-field pruning of custom resources, as the API server does with a CRD's structural schema.

Why: a field the CRD does not declare never reaches etcd on a real cluster (it is dropped on every
write, with a warning, or refused under `fieldValidation=Strict`). An operator that writes such a
field and reads it back would see it vanish; the emulator must show that too.
Rules (apiextensions-apiserver/pkg/apiserver/schema/pruning): object members not in `properties`
are dropped unless `additionalProperties` is a schema (then it applies to every member) or
`x-kubernetes-preserve-unknown-fields: true`; `x-kubernetes-embedded-resource` keeps apiVersion,
kind and metadata; at the root apiVersion and kind are kept and metadata is cut to ObjectMeta.
"""

from __future__ import annotations

from typing import Any

OBJECT_META = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
})
TYPE_META = ("apiVersion", "kind")


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(schema: dict[str, Any], value: Any, path: str, removed: list[str]) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(items, item, f"{path}[{index}]", removed) for index, item in enumerate(value)] \
            if isinstance(items, dict) else value
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    out: dict[str, Any] = {}
    for key, member in value.items():
        if key in properties:
            out[key] = _prune(properties[key], member, _field(path, key), removed)
        elif isinstance(additional, dict):
            out[key] = _prune(additional, member, _field(path, key), removed)
        elif preserve or additional is True or (embedded and key in (*TYPE_META, "metadata")):
            out[key] = member
        else:
            removed.append(_field(path, key))
    return out


def prune(schema: dict[str, Any] | None, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the object without undeclared fields, the paths dropped). Without a schema nothing is pruned."""
    if not schema:
        return obj, []
    removed: list[str] = []
    out: dict[str, Any] = {}
    for key, member in obj.items():
        if key in TYPE_META:
            out[key] = member
        elif key == "metadata" and isinstance(member, dict):
            out[key] = {k: v for k, v in member.items() if k in OBJECT_META}
            removed += [f"metadata.{k}" for k in member if k not in OBJECT_META]
        elif key in (schema.get("properties") or {}):
            out[key] = _prune(schema["properties"][key], member, key, removed)
        elif schema.get("x-kubernetes-preserve-unknown-fields"):
            out[key] = member
        else:
            removed.append(key)
    return out, removed
