"""Demand per LLMServer, for the operator's autoscaler: `GET /internal/load` (docs/contracts.md).

A request counts for the server that owns the model (or adapter) it asked for from admission to its last byte,
held or not, and also for the fallback's server while a fallback answers it (its replicas serve
it). Counts change only on the event loop, in enter/leave pairs run from `finally`, so they are
exact under concurrency and return to 0; a key is dropped once its count is 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from llmserver_gateway import table


@dataclasses.dataclass(slots=True)
class Count:
    """The demand for one server now."""

    key: str
    model: str
    in_flight: int = 0
    held: int = 0


class Demand:
    """Counts per demand key (`table.Route.demand_key`)."""

    def __init__(self) -> None:
        self._counts: dict[str, Count] = {}

    def enter(self, route: table.Route) -> Count:
        """Counts one more request for `route`'s server; pair it with `leave`."""
        key = route.demand_key
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = Count(key, route.adapter_of or route.model)
        count.in_flight += 1
        return count

    def leave(self, count: Count) -> None:
        """Counts the request as finished."""
        count.in_flight -= 1
        if count.in_flight <= 0 and self._counts.get(count.key) is count:
            del self._counts[count.key]

    def snapshot(self, routes: Iterable[table.Route]) -> dict[str, dict[str, Any]]:
        """`{key: {"model", "inFlight", "held"}}` for every route (0 when idle) and every key still busy."""
        out: dict[str, dict[str, Any]] = {}
        for route in routes:
            if route.adapter_of is None:  # an adapter's demand is its server's, under the server's model
                out[route.demand_key] = {"model": route.model, "inFlight": 0, "held": 0}
        for key, count in self._counts.items():
            out[key] = {"model": out.get(key, {}).get("model", count.model), "inFlight": count.in_flight,
                        "held": count.held}
        return out
