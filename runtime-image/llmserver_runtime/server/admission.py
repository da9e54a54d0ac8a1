"""Bounded concurrency with a bounded queue in front of the engine.

At most `max_concurrency` requests run on the backend; up to `max_queue` more wait (FIFO). Anything
beyond is refused at once with 429 + Retry-After, so an overloaded server sheds load instead of
piling up timeouts; every request it accepts is served."""

from __future__ import annotations

import asyncio

from llmserver_api.protocol import errors


class Ticket:
    """A held slot; `release()` is idempotent so every exit path may call it."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._held = True

    def release(self) -> None:
        """Give the slot back (once)."""
        if self._held:
            self._held = False
            self._admission._release()


class Admission:
    """Semaphore plus queue-length check; counters are read by the metrics gauges."""

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.waiting = 0
        self.running = 0
        self._slots = asyncio.Semaphore(max_concurrency)

    def retry_after_s(self) -> float:
        """A hint for clients told to come back: one second is the floor HTTP allows."""
        return 1.0

    async def acquire(self) -> Ticket:
        """Wait for a slot, or raise a 429 APIError when the queue is full.

        Cancellation while waiting (timeout, client gone) leaves no slot behind."""
        if (self._slots.locked() or self.waiting) and self.waiting >= self.max_queue:
            raise errors.rate_limited(
                f"The server is at capacity ({self.max_concurrency} running, {self.waiting} queued); retry later.",
                self.retry_after_s(),
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return Ticket(self)

    def _release(self) -> None:
        self.running -= 1
        self._slots.release()
