"""Demand counts per LLMServer (what `GET /internal/load` reports)."""

from __future__ import annotations

from llmserver_gateway import adapter_routes, demand, table


def test_counts_per_server_and_back_to_zero() -> None:
    a = table.Route(model="a", server="ml/a")
    s = table.Route(model="s")
    load = demand.Demand()
    first, second, third = load.enter(a), load.enter(a), load.enter(s)
    first.held += 1
    assert load.snapshot([a, s]) == {"ml/a": {"model": "a", "inFlight": 2, "held": 1, "refused": 0},
                                     "static/s": {"model": "s", "inFlight": 1, "held": 0, "refused": 0}}
    first.held -= 1
    for count in (first, second, third):
        load.leave(count)
    assert load.snapshot([a, s]) == {"ml/a": {"model": "a", "inFlight": 0, "held": 0, "refused": 0},
                                     "static/s": {"model": "s", "inFlight": 0, "held": 0, "refused": 0}}
    assert load.snapshot([]) == {}  # nothing busy and no route: nothing listed


def test_a_removed_route_still_reports_its_requests_in_flight() -> None:
    load = demand.Demand()
    count = load.enter(table.Route(model="gone", server="ml/gone"))
    assert load.snapshot([]) == {"ml/gone": {"model": "gone", "inFlight": 1, "held": 0, "refused": 0}}
    load.leave(count)
    assert load.snapshot([]) == {}


def test_an_adapter_request_is_demand_for_its_server_under_the_base_model() -> None:
    base = table.Route(model="tiny", server="ml/tiny")
    sql = adapter_routes.route(base, "sql")
    load = demand.Demand()
    count = load.enter(sql)
    assert load.snapshot([base, sql]) == {"ml/tiny": {"model": "tiny", "inFlight": 1, "held": 0, "refused": 0}}
    load.leave(count)
    assert load.snapshot([base, sql]) == {"ml/tiny": {"model": "tiny", "inFlight": 0, "held": 0, "refused": 0}}


def test_a_cold_refusal_is_reported_for_ten_seconds_then_forgotten() -> None:
    now = [100.0]
    cold = table.Route(model="cold", server="ml/cold")
    load = demand.Demand(clock=lambda: now[0])
    for _ in range(2):  # each refused request enters, is refused, and leaves at once
        count = load.enter(cold)
        load.refused(count)
        load.leave(count)
    assert load.snapshot([cold]) == {"ml/cold": {"model": "cold", "inFlight": 0, "held": 0, "refused": 2}}
    now[0] += demand.REFUSED_SECONDS - 0.5
    assert load.snapshot([cold])["ml/cold"]["refused"] == 2
    now[0] += 1
    assert load.snapshot([cold]) == {"ml/cold": {"model": "cold", "inFlight": 0, "held": 0, "refused": 0}}
    count = load.enter(cold)
    load.refused(count)
    load.leave(count)
    assert load.snapshot([]) == {}  # the route went away: its refusals are nobody's demand
