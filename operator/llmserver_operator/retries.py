"""Per-server retries with exponential backoff, for every path that starts a reconcile.

kopf retries only the handlers it tracks (create/update/resume), and only by patching progress
annotations and posting an event on every attempt; a reconcile started by a child's event is never
retried by kopf at all. So retries are ours: a failed pass (API error, lost race, no answer)
schedules the next one with a growing delay, a pass that waits for something unwatched (a Secret)
schedules a plain re-check, and a pass that succeeds cancels what was pending. Nothing is written
to the LLMServer for a retry. Timers run the callback in the kopf context they were scheduled
from, so the reconcile they start can still post events.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable


def backoff(attempt: int, base: float, cap: float) -> float:
    """base, 2*base, 4*base, ... never above cap (attempt counts from 0)."""
    return min(cap, base * (2 ** min(attempt, 30)))


class Retries:
    """One pending timer and one failure count per key (an LLMServer's namespace and name)."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = max(cap, base)
        self._guard = threading.Lock()
        self._timers: dict[Hashable, threading.Timer] = {}
        self._failures: dict[Hashable, int] = {}
        self._closed = False

    def failed(self, key: Hashable, again: Callable[[], None], at_least: float | None = None) -> float:
        """Counts a failure and schedules `again` after the backoff (or the server's Retry-After)."""
        with self._guard:
            attempt = self._failures.get(key, 0)
            self._failures[key] = attempt + 1
        delay = max(backoff(attempt, self.base, self.cap), at_least or 0.0)
        self._schedule(key, again, delay)
        return delay

    def waiting(self, key: Hashable, again: Callable[[], None], delay: float) -> None:
        """A pass that succeeded but waits for something unwatched: re-check after `delay`."""
        with self._guard:
            self._failures.pop(key, None)
        self._schedule(key, again, delay)

    def succeeded(self, key: Hashable) -> None:
        """A pass converged: forget the failures and drop any pending retry."""
        with self._guard:
            self._failures.pop(key, None)
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def failures(self, key: Hashable) -> int:
        """Consecutive failed passes of `key` so far."""
        with self._guard:
            return self._failures.get(key, 0)

    def pending(self, key: Hashable) -> bool:
        """Whether a retry of `key` is scheduled."""
        with self._guard:
            return key in self._timers

    def _schedule(self, key: Hashable, again: Callable[[], None], delay: float) -> None:
        context = contextvars.copy_context()

        def fire() -> None:
            with self._guard:
                if self._timers.get(key) is not timer:
                    return  # replaced or cancelled meanwhile
                del self._timers[key]
            context.run(again)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._guard:
            if self._closed:
                return
            old = self._timers.get(key)
            self._timers[key] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def close(self) -> None:
        """Cancels everything pending (operator shutdown)."""
        with self._guard:
            self._closed = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
