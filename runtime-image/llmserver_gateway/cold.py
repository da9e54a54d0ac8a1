"""A request for a model with no ready endpoint: wake it, answer from its fallback, or hold it.

Order: the model's `wakeUrl` (static config) is POSTed; if its `fallback` names a model that can
answer now (and the caller's key may use it), the request goes there at once, its body's `model`
rewritten; otherwise, with `hold_seconds` > 0, it is held (`hold`) until the model, or the
fallback, can answer; without a hold it is a 503 as before, remembered as demand (`refused`) so
that the autoscaler still wakes the model. Traffic returns to the model itself as
soon as it has a ready endpoint: every request looks at the table it finds.
"""

from __future__ import annotations

from collections.abc import Callable

from llmserver_api.protocol import errors as protocol_errors
from llmserver_gateway import auth, bodies, demand, errors, hold, metrics, table, targets, wake


class ColdPath:
    """Decides where a request for a cold model goes; the caller forwards it."""

    def __init__(
        self,
        routes: table.RoutingTable,
        holds: hold.Holds,
        waker: wake.Waker,
        gauges: metrics.GatewayMetrics,
        prefix_chars: int,
        max_json_depth: int,
        adapter_wanted: Callable[[], None] = lambda: None,
        refused: Callable[[demand.Count], None] = lambda count: None,
    ) -> None:
        self.routes = routes
        self.holds = holds
        self.waker = waker
        self.metrics = gauges
        self.prefix_chars = prefix_chars
        self.max_json_depth = max_json_depth
        self.adapter_wanted = adapter_wanted  # a request waits for an adapter: learn replicas' adapters soon
        self.refused = refused  # a request for an autoscaled model was refused cold: still demand

    async def target(
        self, route: table.Route, body: bytes, key: auth.ApiKey | None, count: demand.Count
    ) -> targets.Target:
        """Where the request for `route` (which has no ready endpoint) goes; raises an APIError
        (503 without hold, 429 at the hold bound, 503 after the hold, 404 if the model went away)."""
        elastic = route.elastic
        if elastic is not None and elastic.wake_url:
            self.waker.wake(route.model, elastic.wake_url)
        model = route.model

        def check() -> targets.Target | None:
            return self._now(model, body, key)

        found = check()
        if found is not None:
            return found
        if elastic is None or elastic.hold_seconds <= 0:
            if elastic is not None:
                self.refused(count)
            raise errors.cold(model)
        if route.adapter_of is not None:
            self.adapter_wanted()
        return await self.holds.wait(route, check, count)

    def _now(self, model: str, body: bytes, key: auth.ApiKey | None) -> targets.Target | None:
        """What the current table offers for `model`: its own route when it can answer, else an
        available fallback the key may use, else None."""
        route = self.routes.get(model)
        if route is None:
            raise protocol_errors.model_not_found(model)
        if route.available:
            return targets.build(route, bodies.parse(body, self.max_json_depth), body, self.prefix_chars)
        fallback = route.elastic.fallback if route.elastic is not None else None
        if fallback is None or (key is not None and not key.allows(fallback)):
            return None
        other = self.routes.get(fallback)
        if other is None or not other.available:
            return None
        self.metrics.child(self.metrics.fallbacks, model, fallback).inc()
        payload = bodies.parse(body, self.max_json_depth)
        return targets.build(other, payload, body, self.prefix_chars, served_by=fallback)
