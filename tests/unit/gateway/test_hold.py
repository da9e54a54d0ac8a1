"""Holding requests for a cold model: woken by a table swap, bounded, timed out, cancelled cleanly."""

from __future__ import annotations

import asyncio

import pytest

from llmserver_api.protocol import errors as protocol_errors
from llmserver_gateway import demand, hold, metrics, table

COLD = table.Route(model="m", endpoints=(table.Endpoint("http://10.0.0.1:8080", ready=False),),
                   elastic=table.Elastic(hold_seconds=5, max_held_requests=2))
WARM = table.Route(model="m", endpoints=(table.Endpoint("http://10.0.0.1:8080"),), elastic=COLD.elastic)


def _setup() -> tuple[table.RoutingTable, hold.Holds, metrics.GatewayMetrics, demand.Count]:
    routes = table.RoutingTable()
    routes.replace([COLD])
    gauges = metrics.GatewayMetrics()
    return routes, hold.Holds(routes, gauges), gauges, demand.Demand().enter(COLD)


def _ready(routes: table.RoutingTable):
    def check() -> table.Route | None:
        route = routes.get("m")
        return route if route is not None and route.available else None
    return check


def _value(gauges: metrics.GatewayMetrics, name: str, **labels: str) -> float | None:
    return gauges.registry.get_sample_value(name, labels)


async def test_a_held_request_wakes_on_the_table_swap_that_brings_an_endpoint() -> None:
    routes, holds, gauges, count = _setup()
    waiter = asyncio.create_task(holds.wait(COLD, _ready(routes), count))
    await asyncio.sleep(0.05)
    assert not waiter.done() and holds.held == {"m": 1} and count.held == 1
    assert _value(gauges, "llmserver_gateway_held_requests", model="m") == 1
    routes.replace([COLD])  # a swap without a ready endpoint: it looks, and keeps waiting
    await asyncio.sleep(0.05)
    assert not waiter.done()
    loop = asyncio.get_running_loop()
    swapped = loop.time()
    routes.replace([WARM])
    assert await asyncio.wait_for(waiter, 1) == WARM
    assert loop.time() - swapped < 0.5  # woken by the swap itself, not by a polling interval
    assert holds.held == {} and count.held == 0
    assert _value(gauges, "llmserver_gateway_held_requests", model="m") == 0
    assert _value(gauges, "llmserver_gateway_hold_seconds_count", model="m") == 1


async def test_beyond_max_held_requests_is_a_429_with_retry_after() -> None:
    routes, holds, gauges, count = _setup()
    waiters = [asyncio.create_task(holds.wait(COLD, _ready(routes), count)) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(protocol_errors.APIError) as refused:
        await holds.wait(COLD, _ready(routes), count)
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "5"}
    assert _value(gauges, "llmserver_gateway_hold_rejected_total", model="m", reason="limit") == 1
    routes.replace([WARM])
    assert await asyncio.gather(*waiters) == [WARM, WARM]


async def test_hold_seconds_elapsed_is_a_503_with_retry_after() -> None:
    routes, holds, gauges, count = _setup()
    short = table.Route(model="m", elastic=table.Elastic(hold_seconds=0.2, max_held_requests=1))
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(protocol_errors.APIError) as timed_out:
        await holds.wait(short, _ready(routes), count)
    assert 0.2 <= loop.time() - began < 1.5
    assert timed_out.value.status_code == 503 and timed_out.value.headers == {"Retry-After": "5"}
    assert _value(gauges, "llmserver_gateway_hold_rejected_total", model="m", reason="timeout") == 1
    assert holds.held == {} and count.held == 0


async def test_a_cancelled_hold_stops_counting() -> None:
    routes, holds, gauges, count = _setup()
    waiter = asyncio.create_task(holds.wait(COLD, _ready(routes), count))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert holds.held == {} and count.held == 0
    assert _value(gauges, "llmserver_gateway_held_requests", model="m") == 0
    assert _value(gauges, "llmserver_gateway_hold_rejected_total", model="m", reason="timeout") is None


async def test_what_check_raises_ends_the_hold() -> None:
    routes, holds, _, count = _setup()

    def gone() -> None:
        if routes.get("m") is None:
            raise protocol_errors.model_not_found("m")

    waiter = asyncio.create_task(holds.wait(COLD, gone, count))
    await asyncio.sleep(0.05)
    routes.replace([])
    with pytest.raises(protocol_errors.APIError) as removed:
        await waiter
    assert removed.value.status_code == 404 and holds.held == {}
