"""One reconcile at a time per LLMServer, with coalescing of bursts of child events.

kopf runs handlers in worker threads, and a server's own change and its children's changes can
arrive together: without a per-server lock two passes would race on the same children. A pod
flapping or a rollout sends many events for one LLMServer; one reconcile running plus one pending
is enough to see the latest state, so further triggers while one is pending are dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class ServerLocks:
    """A lock per key (an LLMServer's namespace and name); `coalesce=True` skips a call when one is already waiting."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._pending: set[Hashable] = set()

    def run(self, key: Hashable, fn: Callable[[], T], coalesce: bool = False) -> T | None:
        """Calls `fn` under the key's lock; returns None when coalesced away."""
        with self._guard:
            if coalesce:
                if key in self._pending:
                    return None
                self._pending.add(key)
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if coalesce:
                with self._guard:
                    self._pending.discard(key)
            return fn()
