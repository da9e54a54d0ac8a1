"""The autoscaling rule (llmserver_operator.autoscaler.decision), driven round by round with a fake clock:
window average, ceil / target, clamp, up at once, down only after the delay, scale from zero on any
demand, no scale-down after a failed scrape, Macs at most 1; and properties over random load traces."""

from __future__ import annotations

import math

import hypothesis
import hypothesis.strategies as st
import pytest
from llmserver_api import elastic
from llmserver_operator.autoscaler import decision

Demand = decision.Demand


def policy(minimum: int = 1, maximum: int = 4, target: int = 8, window: float = 10, delay: float = 30,
           mac: bool = False) -> decision.Policy:
    block = elastic.Autoscaling(min_replicas=minimum, max_replicas=maximum, target_in_flight=target,
                                window_seconds=int(window), scale_down_delay_seconds=int(delay))
    return decision.Policy.of(block, mac=mac)


class Run:
    """Rounds once a second from t=0, applying every decision to `replicas` as the loop does."""

    def __init__(self, rule: decision.Policy, replicas: int) -> None:
        self.rule, self.replicas, self.now = rule, replicas, 0.0
        self.memory = decision.Memory()
        self.decisions: list[tuple[float, decision.Decision]] = []

    def step(self, demand: Demand | None) -> decision.Decision:
        decided, self.memory = decision.decide(self.rule, self.replicas, self.memory, self.now, demand)
        if decided.replicas is not None:
            self.replicas = decided.replicas
            self.decisions.append((self.now, decided))
        self.now += 1
        return decided

    def steps(self, count: int, demand: Demand | None) -> decision.Decision:
        last = self.step(demand)
        for _ in range(count - 1):
            last = self.step(demand)
        return last


def test_desired_is_the_window_average_over_the_target_rounded_up() -> None:
    run = Run(policy(minimum=1, maximum=10, target=8, window=4), replicas=1)
    assert run.step(Demand(17)).desired == 3  # ceil(17 / 8)
    assert run.replicas == 3  # up at once
    run.step(Demand(0))
    decided = run.step(Demand(7))  # (17 + 0 + 7) / 3 = 8 -> exactly one replica's target
    assert decided.average == 8 and decided.desired == 1


def test_the_window_forgets_old_samples() -> None:
    run = Run(policy(maximum=10, target=1, window=3, delay=1000), replicas=1)
    run.step(Demand(9))
    assert run.steps(2, Demand(0)).average == 3  # (9 + 0 + 0) / 3
    assert run.step(Demand(0)).average == 0  # the 9 is older than the window now


def test_up_is_at_once_and_clamped_to_max() -> None:
    run = Run(policy(maximum=4, target=2), replicas=1)
    decided = run.step(Demand(100))
    assert (decided.replicas, decided.direction, decided.desired) == (4, "up", 4)
    assert "target 2" in decided.reason


def test_down_waits_for_the_delay_then_goes_to_the_highest_recent_desire() -> None:
    run = Run(policy(minimum=1, maximum=4, target=1, window=1, delay=5), replicas=1)
    run.step(Demand(4))
    assert run.replicas == 4
    # desire falls to 2 for a while, then 1: the first step down is to 2, once 2 or below lasted 5 s
    for _ in range(5):
        assert run.step(Demand(2)).replicas is None
    run.step(Demand(2))
    assert run.decisions[-1][1].replicas == 2 and run.decisions[-1][1].direction == "down"
    assert run.decisions[-1][0] - run.decisions[0][0] == 6  # lower since t=1, for 5 s at t=6
    run.steps(5, Demand(1))
    assert run.replicas == 2  # still within 5 s of a desire of 2
    run.step(Demand(1))
    assert run.replicas == 1
    assert [d.direction for _, d in run.decisions] == ["up", "down", "down"]


def test_any_higher_desire_during_the_delay_restarts_the_wait() -> None:
    run = Run(policy(maximum=4, target=1, window=1, delay=5), replicas=3)
    run.steps(4, Demand(1))
    run.step(Demand(3))  # back up to what runs: no scale-down for another 5 s
    run.steps(4, Demand(1))
    assert run.replicas == 3
    run.steps(2, Demand(1))
    assert run.replicas == 1


def test_scale_from_zero_at_once_on_any_demand_or_held_request() -> None:
    for demand in (Demand(1), Demand(0, held=1), Demand(1, held=1)):
        run = Run(policy(minimum=0, maximum=3, target=100, window=60, delay=300), replicas=0)
        decided = run.step(demand)
        assert (decided.replicas, decided.direction) == (1, "up"), demand
        assert "no replica" in decided.reason


def test_a_request_refused_while_cold_wakes_the_server_and_holds_off_scale_down() -> None:
    run = Run(policy(minimum=0, maximum=3, target=4, window=2, delay=2), replicas=0)
    decided = run.step(Demand(0, refused=1))  # holdSeconds 0: the request got its 503, its wish counts
    assert (decided.replicas, decided.direction) == (1, "up")
    assert "1 refused lately" in decided.reason
    run.steps(5, Demand(0, refused=1))  # still reported (the gateway keeps it for 10 s): stays up
    assert run.replicas == 1
    run.steps(10, Demand(0))
    assert run.replicas == 0  # forgotten, then the delay: back to zero


def test_min_zero_scales_to_zero_after_the_delay_without_demand() -> None:
    run = Run(policy(minimum=0, maximum=2, target=4, window=2, delay=3), replicas=0)
    run.step(Demand(3))
    assert run.replicas == 1
    run.steps(20, Demand(0))
    (up_at, _), (down_at, down) = run.decisions
    assert run.replicas == 0 and down.direction == "down" and down.replicas == 0
    assert down_at - up_at >= 2 + 3  # the window empties, then the delay passes
    assert down_at - up_at <= 2 + 3 + 1


def test_min_one_never_scales_to_zero() -> None:
    run = Run(policy(minimum=1, maximum=2, target=1, window=1, delay=0), replicas=2)
    run.steps(10, Demand(0))
    assert run.replicas == 1


def test_no_scale_down_while_a_gateway_could_not_be_read() -> None:
    run = Run(policy(maximum=4, target=1, window=1, delay=2), replicas=4)
    decided = run.steps(10, Demand(0, complete=False))
    assert run.replicas == 4 and decided.replicas is None and "could not be read" in decided.reason
    run.step(Demand(0))  # one complete round: the lower desire has lasted long enough already
    assert run.replicas == 1


def test_an_incomplete_round_still_scales_up() -> None:
    run = Run(policy(maximum=4, target=1), replicas=1)
    assert run.step(Demand(3, complete=False)).replicas == 3


def test_nothing_measured_keeps_replicas_and_restarts_the_delay() -> None:
    run = Run(policy(maximum=4, target=1, window=1, delay=3), replicas=3)
    kept = run.steps(10, None)
    assert kept.replicas is None and kept.desired == 3 and run.replicas == 3  # it wants what runs
    run.steps(3, Demand(0))
    assert run.replicas == 3  # the delay counts from the first measured round again
    run.step(Demand(0))
    assert run.replicas == 1


@pytest.mark.parametrize(("current", "expected"), [(0, 2), (1, 2), (9, 5), (100, 5)])
def test_spec_replicas_outside_the_bounds_is_clamped_at_once(current: int, expected: int) -> None:
    run = Run(policy(minimum=2, maximum=5, target=8), replicas=current)
    decided = run.step(None)  # even with nothing measured
    assert decided.replicas == expected and "outside [2, 5]" in decided.reason


def test_below_min_with_high_demand_goes_straight_to_the_desire() -> None:
    run = Run(policy(minimum=2, maximum=5, target=1), replicas=0)
    assert run.step(Demand(4)).replicas == 4


def test_a_mac_placed_server_runs_at_most_one_replica() -> None:
    rule = policy(minimum=0, maximum=8, target=1, mac=True)
    assert (rule.min_replicas, rule.max_replicas) == (0, 1)
    run = Run(rule, replicas=0)
    assert run.step(Demand(50)).replicas == 1
    assert Run(policy(minimum=3, maximum=8, mac=True), replicas=4).step(None).replicas == 1


def test_steady_load_decides_nothing() -> None:
    run = Run(policy(maximum=8, target=4), replicas=2)
    for _ in range(50):
        decided = run.step(Demand(8))
        assert decided.replicas is None and decided.desired == 2
    assert run.decisions == []


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    minimum=st.integers(0, 3), extra=st.integers(0, 5), target=st.integers(1, 10), window=st.integers(1, 6),
    delay=st.integers(0, 8), start=st.integers(0, 12),
    trace=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3), st.booleans()), min_size=1, max_size=40),
)
def test_properties_over_random_traces(minimum: int, extra: int, target: int, window: int, delay: int, start: int,
                                       trace: list[tuple[int, int, bool]]) -> None:
    rule = policy(minimum=minimum, maximum=max(1, minimum + extra), target=target, window=window, delay=delay)
    run = Run(rule, replicas=start)
    for in_flight, held, complete in trace:
        before = run.replicas
        demand = Demand(in_flight, held, complete)
        decided = run.step(demand)
        # always within bounds after a round, and the desire is the clamped ceil of the window average
        assert rule.min_replicas <= run.replicas <= rule.max_replicas
        raw = max(rule.min_replicas, min(rule.max_replicas, math.ceil(decided.average / target - 1e-9)))
        assert decided.desired == (max(raw, 1) if demand.any else raw)
        if decided.replicas is None:
            continue
        assert decided.replicas != before
        if before < rule.min_replicas or before > rule.max_replicas:
            continue  # a clamp
        if decided.direction == "up":
            assert decided.replicas == decided.desired  # up goes straight to the desire
        else:
            assert complete  # never down on a round with a gateway missing
            assert not demand.any or decided.replicas >= 1  # never to zero with a request waiting
            assert decided.replicas >= decided.desired
            assert run.now - 1 >= delay  # a full delay of history first
        # with demand now, a server never ends a round at zero
        assert not (demand.any and run.replicas == 0)
