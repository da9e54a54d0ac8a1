"""The `/scale` subresource: an autoscaling/v1 Scale view of an object's replica count.

`kubectl scale` GETs it and PATCHes `{"spec": {"replicas": N}}`; an HPA GETs it and PUTs the whole
Scale back (with its resourceVersion, so a stale write is a 409). Built-in workloads keep their
replicas at .spec.replicas and their selector at .spec.selector (a LabelSelector); a CRD names the
three paths in `subresources.scale` and its selector is already a string, as the API server requires.
A write changes only the object's replica count, which bumps its generation like any spec change.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from testkit import emulator_admission, emulator_patch, emulator_resources, emulator_store

Obj = dict[str, Any]
ApiError = emulator_store.ApiError


@dataclasses.dataclass(frozen=True)
class ScalePaths:
    """Where a kind keeps its replica counts and pod selector (dotted paths, as in a CRD)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None  # None: a built-in's .spec.selector LabelSelector object
    default_replicas: int = 1  # what an absent spec count reads as (the API server defaults built-ins to 1)


def paths_of(resource: emulator_resources.Resource) -> ScalePaths:
    """The CRD's declared paths (an absent count reads as 0 there), else the built-in layout."""
    declared = resource.scale
    if declared is None:
        return ScalePaths()
    return ScalePaths(declared["specReplicasPath"], declared["statusReplicasPath"], declared.get("labelSelectorPath"), 0)


def _parts(path: str) -> list[str]:
    return [part for part in path.split(".") if part]


def _read(obj: Obj, path: str) -> Any:
    node: Any = obj
    for part in _parts(path):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _nested(path: str, value: Any) -> Obj:
    """A merge patch that sets one dotted path."""
    patch: Any = value
    for part in reversed(_parts(path)):
        patch = {part: patch}
    return patch


def _selector(obj: Obj, paths: ScalePaths) -> str:
    if paths.label_selector is not None:
        value = _read(obj, paths.label_selector)
        return value if isinstance(value, str) else ""
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(match.items()))


def view(resource: emulator_resources.Resource, obj: Obj) -> Obj:
    """The Scale object of `obj`."""
    paths = paths_of(resource)
    replicas = _read(obj, paths.spec_replicas)
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {key: obj["metadata"][key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if key in obj["metadata"]},
            "spec": {"replicas": paths.default_replicas if replicas is None else replicas},
            "status": {"replicas": int(_read(obj, paths.status_replicas) or 0), "selector": _selector(obj, paths)}}


def _wanted(scale: Any, name: str) -> int:
    replicas = ((scale or {}).get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                                       f"{replicas!r}: must be a non-negative integer")
    return replicas


def serve(store: emulator_store.Store, resource: emulator_resources.Resource, namespace: str | None, name: str,
          method: str, body: Any, content_type: str, context: emulator_admission.WriteContext) -> Obj:
    """GET, PUT or PATCH of `name`/scale; answers the Scale after the write."""
    with store.lock:  # read, patch the Scale view, write: one step, as the API server's update is
        obj = store.get(resource, namespace, name, copied=False)
        if method == "GET":
            return view(resource, obj)
        current = view(resource, obj)
        if method == "PUT":
            wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource.plural} "{name}": the object '
                                                "has been modified; please apply your changes to the latest version and try again")
            scale = body
        elif method == "PATCH":
            try:
                if content_type.startswith("application/json-patch+json"):
                    scale = emulator_patch.json_patch(current, body)
                else:
                    scale = emulator_patch.merge_patch(copy.deepcopy(current), body)
            except emulator_patch.PatchError as exc:
                raise ApiError(422, "Invalid", f"the patch cannot be applied: {exc}") from None
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {resource.plural}/scale")
        replicas = _wanted(scale, name)
        written = store.patch(resource, namespace, name, _nested(paths_of(resource).spec_replicas, replicas),
                              "application/merge-patch+json", None, context)
        return view(resource, written)
