"""Demand per LLMServer, for the operator's autoscaler: `GET /internal/load` (docs/contracts.md).

A request counts for the server that owns the model (or adapter) it asked for from admission to its last byte,
held or not, and also for the fallback's server while a fallback answers it (its replicas serve
it). Counts change only on the event loop, in enter/leave pairs run from `finally`, so they are
exact under concurrency and return to 0; a key is dropped once its count is 0.

A request refused at once because its autoscaled model is cold (holdSeconds 0) is over before any
scrape could count it, so each refusal is also remembered for REFUSED_SECONDS and reported as
`refused`: enough for the autoscaler, which reads every second, to wake the model anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from llmserver_gateway import table

REFUSED_SECONDS = 10.0  # how long a cold refusal stays visible: several autoscaler rounds
_REFUSALS_KEPT = 1000  # per key; the count saturates there, the signal does not need more


@dataclasses.dataclass(slots=True)
class Count:
    """The demand for one server now."""

    key: str
    model: str
    in_flight: int = 0
    held: int = 0


class Demand:
    """Counts per demand key (`table.Route.demand_key`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[str, Count] = {}
        self._refusals: dict[str, collections.deque[float]] = {}
        self._clock = clock

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

    def refused(self, count: Count) -> None:
        """Remembers that `count`'s request was refused because its model had no ready replica."""
        self._refusals.setdefault(count.key, collections.deque(maxlen=_REFUSALS_KEPT)).append(self._clock())

    def _recent_refusals(self) -> dict[str, int]:
        """Refusals of the last REFUSED_SECONDS per key; older ones (and empty keys) are dropped."""
        horizon = self._clock() - REFUSED_SECONDS
        for key, times in list(self._refusals.items()):
            while times and times[0] <= horizon:
                times.popleft()
            if not times:
                del self._refusals[key]
        return {key: len(times) for key, times in self._refusals.items()}

    def snapshot(self, routes: Iterable[table.Route]) -> dict[str, dict[str, Any]]:
        """`{key: {"model", "inFlight", "held", "refused"}}` for every route (0 when idle) and every
        key still busy or recently refused."""
        out: dict[str, dict[str, Any]] = {}
        for route in routes:
            if route.adapter_of is None:  # an adapter's demand is its server's, under the server's model
                out[route.demand_key] = {"model": route.model, "inFlight": 0, "held": 0, "refused": 0}
        for key, count in self._counts.items():
            out[key] = {"model": out.get(key, {}).get("model", count.model), "inFlight": count.in_flight,
                        "held": count.held, "refused": 0}
        for key, refused in self._recent_refusals().items():
            if key in out:  # a key whose route went away is nobody's demand any more
                out[key]["refused"] = refused
        return out
