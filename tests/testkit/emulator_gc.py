"""The API emulator's garbage collector: ownerReferences honoured asynchronously, as kube-controller-manager does.

Why: on a real cluster deleting an owner returns at once and its dependents disappear later, from
a background loop; code (or a test) that expects them gone right after the DELETE is wrong there.
Semantics (pkg/controller/garbagecollector):
- Background: the owner goes now; each dependent whose owners are all gone is deleted afterwards
  (a dependent that still has a live owner only loses the dangling reference).
- Foreground: the owner stays with deletionTimestamp and the `foregroundDeletion` finalizer while
  its dependents are deleted (those that have dependents of their own, in foreground too); the
  finalizer is removed once no dependent with `blockOwnerDeletion: true` is left.
- Orphan: the owner stays with the `orphan` finalizer until its dependents' references to it are
  removed; then it goes and the dependents stay.
- A dependent created with a reference to an owner that does not exist is collected too.
Work runs `delay` seconds after the change that caused it (default 0.05 s), on one thread.
`pause()`/`resume()` hold it (to observe the in-between state) and `idle()` waits for it.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import threading
import time
from typing import Any

from testkit import emulator_store

Key = tuple[tuple[str, str, str], str | None, str]  # (resource key, namespace, name)
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"


def _refs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["metadata"].get("ownerReferences") or []


class GarbageCollector:
    """Indexes dependents by owner uid from the store's events and collects them on its own thread."""

    def __init__(self, store: emulator_store.Store, delay: float = 0.05) -> None:
        self.store = store
        self.delay = delay
        self._dependents: dict[str, set[Key]] = collections.defaultdict(set)
        self._owners_of: dict[Key, set[str]] = {}
        self._by_uid: dict[str, Key] = {}
        self._heap: list[tuple[float, int, tuple[str, Any]]] = []
        self._queued: set[tuple[str, Any]] = set()
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._paused = False
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        with store.lock:
            for resource, obj in store.objects():
                self._index(emulator_store.Event(0, "ADDED", resource, obj))
            store.subscribe(self._on_event)

    # --- control ---------------------------------------------------------------------------
    def start(self) -> GarbageCollector:
        """Starts the collector thread."""
        self._thread = threading.Thread(target=self._work, name="kube-emulator-gc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the thread (pending work is dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def pause(self) -> None:
        """Holds collection (work keeps queueing) until resume()."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        """Lets held work run."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def idle(self, timeout: float = 30.0) -> None:
        """Waits until every queued piece of work (and what it caused) is done."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the garbage collector is still busy")
                self._cond.wait(min(left, 0.1))

    # --- the index (called under the store lock: never blocks) -----------------------------
    def _index(self, event: emulator_store.Event) -> set[str]:
        meta = event.obj["metadata"]
        key: Key = (event.resource.key, meta.get("namespace") if event.resource.namespaced else None, meta["name"])
        refs = set() if event.type == "DELETED" else {ref.get("uid") for ref in _refs(event.obj) if ref.get("uid")}
        before = self._owners_of.pop(key, set())
        for uid in before - refs:
            self._dependents[uid].discard(key)
            if not self._dependents[uid]:
                del self._dependents[uid]
        for uid in refs:
            self._dependents[uid].add(key)
        if refs:
            self._owners_of[key] = refs
        if event.type == "DELETED":
            self._by_uid.pop(meta["uid"], None)
        else:
            self._by_uid[meta["uid"]] = key
        return before

    def _on_event(self, event: emulator_store.Event) -> None:
        with self._cond:
            before = self._index(event)
            meta = event.obj["metadata"]
            if event.type == "DELETED":
                self._schedule(("owner", meta["uid"]))
                for uid in before:  # an owner deleted in foreground may be waiting for this one
                    self._schedule(("owner", uid))
                return
            if meta.get("deletionTimestamp") and {FOREGROUND, ORPHAN} & set(meta.get("finalizers") or ()):
                self._schedule(("owner", meta["uid"]))
            if any(not self.store.has_uid(uid) for uid in self._owners_of.get(self._by_uid[meta["uid"]], ())):
                self._schedule(("dependent", self._by_uid[meta["uid"]]))

    def _schedule(self, item: tuple[str, Any]) -> None:
        if item in self._queued:
            return
        self._queued.add(item)
        heapq.heappush(self._heap, (time.monotonic() + self.delay, next(self._order), item))
        self._cond.notify_all()

    # --- the loop --------------------------------------------------------------------------
    def _next(self) -> tuple[str, Any] | None:
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if self._heap and not self._paused:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, item = heapq.heappop(self._heap)
                        self._queued.discard(item)
                        self._busy = True
                        return item
                    self._cond.wait(wait)
                else:
                    self._cond.wait(1.0)

    def _work(self) -> None:
        while (item := self._next()) is not None:
            try:
                with self.store.lock:
                    if item[0] == "owner":
                        self._owner(item[1])
                    else:
                        self._dependent(item[1])
            except emulator_store.ApiError as exc:
                if exc.code not in (404, 409):
                    self.errors.append(exc)
            except Exception as exc:  # noqa: BLE001 - kept for tests to inspect; the collector keeps going
                self.errors.append(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _live(self, key: Key) -> dict[str, Any] | None:
        resource = self.store.resources[key[0]]
        with contextlib.suppress(emulator_store.ApiError):
            return self.store.get(resource, key[1], key[2], copied=False)
        return None

    def _owner(self, uid: str) -> None:
        """An owner is gone, or is waiting (foreground/orphan) for its dependents."""
        owner_key = self._by_uid.get(uid)
        owner = self._live(owner_key) if owner_key else None
        finalizers = list((owner or {}).get("metadata", {}).get("finalizers") or [])
        deleting = owner is not None and owner["metadata"].get("deletionTimestamp")
        dependents = sorted(self._dependents.get(uid, ()))
        if deleting and ORPHAN in finalizers:
            for key in dependents:
                dependent = self._live(key)
                if dependent is not None:
                    kept = [ref for ref in _refs(dependent) if ref.get("uid") != uid]
                    self._patch(key, {"metadata": {"ownerReferences": kept}})
            self._patch(owner_key, {"metadata": {"finalizers": [f for f in finalizers if f != ORPHAN]}})
            return
        for key in dependents:
            self._dependent(key)
        if deleting and FOREGROUND in finalizers:
            blocking = [key for key in self._dependents.get(uid, ())
                        if any(ref.get("uid") == uid and ref.get("blockOwnerDeletion")
                               for ref in _refs(self._live(key) or {"metadata": {}}))]
            if not blocking:
                self._patch(owner_key, {"metadata": {"finalizers": [f for f in finalizers if f != FOREGROUND]}})

    def _dependent(self, key: Key) -> None:
        """Deletes a dependent whose owners are all gone or going; drops references to gone owners otherwise."""
        dependent = self._live(key)
        if dependent is None or dependent["metadata"].get("deletionTimestamp"):
            return
        solid, waiting, dangling = [], [], []
        for ref in _refs(dependent):
            owner_key = self._by_uid.get(ref.get("uid", ""))
            owner = self._live(owner_key) if owner_key and self.store.has_uid(ref.get("uid", "")) else None
            if owner is None:
                dangling.append(ref)
            elif owner["metadata"].get("deletionTimestamp") and FOREGROUND in (owner["metadata"].get("finalizers") or []):
                waiting.append(ref)
            else:
                solid.append(ref)
        if solid:
            if dangling or waiting:
                self._patch(key, {"metadata": {"ownerReferences": solid}})
            return
        if not (waiting or dangling):
            return
        has_dependents = bool(self._dependents.get(dependent["metadata"]["uid"]))
        propagation = "Foreground" if waiting and has_dependents else "Background"
        self.store.delete(self.store.resources[key[0]], key[1], key[2], propagation)

    def _patch(self, key: Key | None, patch: dict[str, Any]) -> None:
        if key is not None:
            self.store.patch(self.store.resources[key[0]], key[1], key[2], patch, "application/merge-patch+json")
