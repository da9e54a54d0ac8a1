"""What kopf's watches have seen of the LLMServers and their children, for reads without API calls.

Every pass used to GET the LLMServer and each child it looks at (about 20 reads per server until
Ready, most of them repeated by the passes that child events start). kopf already watches all of
these (by label for the children), so its indexing handlers, which kopf runs for every event
before any other handler and waits on for the initial listing of every kind, store each object
here; the watch's DELETED events remove it (by uid: kopf handles a deleted object and a new one
of the same name concurrently). Our own writes are stored from the API's answer (write-through),
so the next pass never acts on a version older than its own write: an older resourceVersion of
the same object arriving late from the watch is ignored.

Only objects the watches select are here: a miss means "not one of ours", never "absent" for
anything else, so readers of objects that may be foreign (a user's claim) fall back to the API.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

Manifest = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name


def _version(obj: Mapping[str, Any]) -> int | None:
    """The resourceVersion as a number (etcd's revision), None when absent or opaque."""
    try:
        return int(((obj.get("metadata") or {}).get("resourceVersion")) or "")
    except ValueError:
        return None


def _older(incoming: Mapping[str, Any], known: Mapping[str, Any] | None) -> bool:
    """Whether `incoming` is an older version than `known` (unknown order: not older)."""
    if known is None:
        return False
    new, old = _version(incoming), _version(known)
    return new is not None and old is not None and new < old


class WatchCache:
    """Thread-safe objects by kind, namespace and name, for the kinds in `kinds` only."""

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self._guard = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, Manifest]] = {}  # (kind, namespace) -> name -> object
        self._gone: dict[Key, str] = {}  # uid of the deleted object by name: its late copies stay out

    def covers(self, kind: str) -> bool:
        """Whether objects of `kind` are kept here."""
        return kind in self.kinds

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name"))

    def store(self, obj: Mapping[str, Any]) -> None:
        """Keeps a copy of `obj` (a watch event's body or a write's answer) unless a newer one is known."""
        if obj.get("kind") not in self.kinds or not (obj.get("metadata") or {}).get("name"):
            return
        kept = copy.deepcopy(dict(obj))
        kind, namespace, name = key = self._key(kept)
        uid = kept["metadata"].get("uid")
        with self._guard:
            if uid is not None and self._gone.get(key) == uid:
                return  # the deleted object itself, reported late
            objects = self._objects.setdefault((kind, namespace), {})
            known = objects.get(name)
            if known is None or known["metadata"].get("uid") != uid or not _older(kept, known):
                self._gone.pop(key, None)
                objects[name] = kept

    def forget(self, obj: Mapping[str, Any]) -> None:
        """The object was deleted (a DELETED event, or our own delete). With a uid, only that very
        object: a newer one of the same name, seen meanwhile, stays."""
        if obj.get("kind") not in self.kinds:
            return
        kind, namespace, name = key = self._key(obj)
        uid = (obj.get("metadata") or {}).get("uid")
        with self._guard:
            objects = self._objects.get((kind, namespace), {})
            known = objects.get(name)
            if known is not None and uid is not None and known["metadata"].get("uid") != uid:
                return
            objects.pop(name, None)
            if uid is not None:
                self._gone[key] = uid

    def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        """A copy of the object, or None when the watches have not seen it (or saw it deleted)."""
        with self._guard:
            found = self._objects.get((kind, namespace), {}).get(name)
        return copy.deepcopy(found) if found is not None else None

    def list(self, kind: str, namespace: str, labels: Mapping[str, str]) -> list[Manifest]:
        """Copies of the objects of `kind` in `namespace` carrying every label given."""
        with self._guard:
            found = [obj for obj in self._objects.get((kind, namespace), {}).values()
                     if all(((obj.get("metadata") or {}).get("labels") or {}).get(key) == value
                            for key, value in labels.items())]
        return copy.deepcopy(found)
