"""Holding requests for a model with no ready endpoint until one appears (scale from zero, loading).

A held request waits, with nothing sent to the client, for the routing table to change: every
swap wakes every held request, which then looks at the new table (no polling). The caller's
`check` decides what a table offers (the model's own ready endpoint, or a fallback). Per model, at
most `max_held_requests` wait at once (beyond it 429); after `hold_seconds` the answer is 503.
Both carry Retry-After. A client that goes away cancels its handler, which ends the hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from llmserver_api.protocol import errors as protocol_errors
from llmserver_gateway import demand, metrics, table

T = TypeVar("T")

RETRY_AFTER_S = 5  # what a refused or timed-out held request is told to wait before trying again


class Holds:
    """The held requests of one gateway, per model."""

    def __init__(self, routes: table.RoutingTable, gauges: metrics.GatewayMetrics) -> None:
        self.metrics = gauges
        self.held: dict[str, int] = {}
        self._swapped = asyncio.Event()
        routes.subscribe(self._on_swap)

    def _on_swap(self) -> None:
        """Wakes every held request; later waiters wait on a fresh event."""
        self._swapped.set()
        self._swapped = asyncio.Event()

    async def wait(self, route: table.Route, check: Callable[[], T | None], count: demand.Count) -> T:
        """Holds until `check()` (run now and after every table swap) returns a value, and returns it.

        Raises a 429 APIError when the model already has its maximum of held requests and a 503
        one when `hold_seconds` pass; whatever `check` raises (e.g. the model was removed) ends it too.
        """
        elastic = route.elastic or table.Elastic()
        model = route.model
        held = self.held.get(model, 0)
        if held >= elastic.max_held_requests:
            self.metrics.child(self.metrics.hold_rejected, model, "limit").inc()
            raise protocol_errors.rate_limited(
                f"The model `{model}` is starting and already has {held} request(s) waiting for it "
                "(its limit); retry shortly.", retry_after_s=RETRY_AFTER_S)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + elastic.hold_seconds
        gauge = self.metrics.child(self.metrics.held, model)
        self.held[model] = held + 1
        count.held += 1
        gauge.inc()
        try:
            while True:
                swapped = self._swapped
                found = check()
                if found is not None:
                    return found
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(swapped.wait(), left)
                except TimeoutError:
                    pass
        finally:
            left_held = self.held[model] - 1
            if left_held:
                self.held[model] = left_held
            else:
                del self.held[model]
            count.held -= 1
            gauge.dec()
            self.metrics.child(self.metrics.hold_seconds, model).observe(loop.time() - started)
        self.metrics.child(self.metrics.hold_rejected, model, "timeout").inc()
        raise protocol_errors.unavailable(
            f"The model `{model}` got no ready endpoint within {elastic.hold_seconds:g} s; retry later.",
            retry_after_s=RETRY_AFTER_S)
