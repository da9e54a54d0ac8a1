"""Writing an LLMServer's children: create-or-replace by content hash, ownership checked by UID.

Every write goes through `Children`: an object of the child's name that this very LLMServer (its
UID) does not control is never taken over. One left by an earlier LLMServer of the same name,
waiting for the API server's asynchronous garbage collection, is deleted (by UID) and created
afresh; anything else is a `ChildProblem` (ChildConflict) that reaches the status. An object the
API server refuses (422) is a ChildProblem (InvalidChild) with the server's message.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from llmserver_operator import kube as kube_mod
from llmserver_operator.builders import common

Manifest = dict[str, Any]


class Conflict(Exception):
    """A write lost a race (409): another pass will see the newer state. Retried, never reported."""


class ChildProblem(Exception):
    """A child cannot be written until something outside the operator changes: reported in status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def ours(obj: Manifest) -> bool:
    """Labelled as managed by this operator."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by") == common.MANAGED_BY


def config_hash(obj: Manifest | None) -> str | None:
    """The content hash the operator stamped on a child."""
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(common.CONFIG_HASH)


def controller(obj: Manifest) -> Manifest | None:
    """The ownerReference marked controller, if any."""
    return next((ref for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("controller")), None)


def _describe(obj: Manifest) -> str:
    return f"{obj.get('kind')} {obj['metadata']['name']!r}"


class Children:
    """Reads and writes of one server's children; stateless besides the API client."""

    def __init__(self, kube: kube_mod.Kube) -> None:
        self.kube = kube

    # --- reading ---------------------------------------------------------------------------
    def read(self, kind: str, namespace: str, name: str, labelled: bool = True) -> Manifest | None:
        """The live object: from the watch cache when it keeps `kind` and the object would carry our
        label (a miss there is "not ours": creating it answers 409 if a foreign one holds the name),
        else from the API."""
        cache = self.kube.cache
        if labelled and cache is not None and cache.covers(kind):
            return cache.get(kind, namespace, name)
        return self.kube.get(kind, namespace, name)

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        """Whether the object exists, ours or not: the cache when it has it, else the API."""
        cache = self.kube.cache
        if cache is not None and cache.covers(kind) and cache.get(kind, namespace, name) is not None:
            return True
        return self.kube.get(kind, namespace, name) is not None

    def list(self, kind: str, namespace: str, labels: Mapping[str, str]) -> list[Manifest]:
        """Our objects of `kind` carrying `labels` (the watch selects them by our label too)."""
        cache = self.kube.cache
        if cache is not None and cache.covers(kind):
            return cache.list(kind, namespace, {**labels, "app.kubernetes.io/managed-by": common.MANAGED_BY})
        return self.kube.list(kind, namespace, labels)

    # --- ownership -------------------------------------------------------------------------
    def claim(self, current: Manifest | None, owner: Manifest) -> Manifest | None:
        """`current` when this owner may write it; None when it was an earlier server's (now deleted)."""
        if current is None:
            return None
        ref = controller(current)
        uid = owner["metadata"]["uid"]
        if ref is not None and ref.get("uid") == uid:
            return current
        if ref is None and ours(current):
            return current  # ours without an owner (never created so by this operator): kept as is
        if ref is not None and ours(current) and ref.get("kind") == owner.get("kind") and ref.get("name") == owner["metadata"]["name"]:
            meta = current["metadata"]
            self.kube.delete(current["kind"], meta.get("namespace"), meta["name"], uid=meta.get("uid"))
            return None  # an earlier server of this name left it for garbage collection: never adopted
        holder = f"controlled by {ref.get('kind')} {ref.get('name')!r}" if ref else f"not managed by {common.MANAGED_BY}"
        raise ChildProblem("ChildConflict", f"{_describe(current)} already exists and is {holder}; "
                                            "delete or rename it so the operator can create its own")

    # --- writing ---------------------------------------------------------------------------
    def prepared(self, desired: Manifest, owner: Manifest) -> Manifest:
        """A copy owned by `owner`, labels sorted, content hash stamped."""
        obj = copy.deepcopy(desired)
        kopf.adopt(obj, owner=owner)
        obj["metadata"]["labels"] = dict(sorted(obj["metadata"].get("labels", {}).items()))
        return common.stamp_config_hash(obj)

    def create(self, obj: Manifest, owner: Manifest | None = None) -> Manifest:
        """POST; a name taken meanwhile returns the live object (claimed for `owner` when given)."""
        try:
            return self.kube.create(obj)
        except kube_mod.ApiError as exc:
            if exc.status == 422:
                raise ChildProblem("InvalidChild", f"the API server refused {_describe(obj)}: {exc.message}") from None
            if exc.status != 409:
                raise
        current = self.kube.get(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if owner is not None:
            current = self.claim(current, owner)
        if current is None:
            raise Conflict(f"{_describe(obj)} was deleted while being created")
        return current

    def apply(self, desired: Manifest, owner: Manifest, current: Manifest | None | bool = False) -> Manifest:
        """Create-or-replace: no write when the live object is ours and carries the desired hash.

        `current` may be passed when the caller already fetched it (None: known to be absent).
        """
        obj = self.prepared(desired, owner)
        meta = obj["metadata"]
        if current is False:
            current = self.read(obj["kind"], meta["namespace"], meta["name"], labelled=ours(obj))
        assert current is not True
        current = self.claim(current, owner)
        if current is None:
            current = self.create(obj, owner)
        if config_hash(current) == config_hash(obj):
            return current
        live = current["metadata"]
        meta["resourceVersion"] = live["resourceVersion"]
        meta["annotations"] = dict(sorted({**(live.get("annotations") or {}), **meta.get("annotations", {})}.items()))
        mine = {r["uid"] for r in meta.get("ownerReferences", [])}
        others = [ref for ref in live.get("ownerReferences") or [] if ref.get("uid") not in mine and not ref.get("controller")]
        meta["ownerReferences"] = meta.get("ownerReferences", []) + others
        if live.get("finalizers"):
            meta["finalizers"] = live["finalizers"]
        if obj["kind"] == "Service":
            for ip in ("clusterIP", "clusterIPs"):
                if ip in (current.get("spec") or {}):
                    obj["spec"][ip] = current["spec"][ip]
        try:
            return self.kube.replace(obj)
        except kube_mod.ApiError as exc:
            if exc.status == 409:
                raise Conflict(f"{_describe(obj)} changed while being updated") from None
            if exc.status == 422:
                raise ChildProblem("InvalidChild", f"the API server refused {_describe(obj)}: {exc.message}") from None
            raise

    # --- removing --------------------------------------------------------------------------
    def remove_others(self, namespace: str, labels: Mapping[str, str], kinds: Iterable[str],
                      keep: set[tuple[str, str]], extra_labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Deletes the objects of `kinds` carrying `labels` (plus a kind's `extra_labels`) not in `keep`."""
        for kind in kinds:
            selector = {**labels, **((extra_labels or {}).get(kind) or {})}
            for obj in self.kube.list(kind, namespace, selector):
                if (kind, obj["metadata"]["name"]) not in keep:
                    self.kube.delete(kind, namespace, obj["metadata"]["name"], uid=obj["metadata"].get("uid"))
