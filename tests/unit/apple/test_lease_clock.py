"""Lease silence on the observer's own clock: renewals seen, first sightings, and our own outages."""

from __future__ import annotations

from llmserver_operator import lease_clock


def _lease(renew: str) -> dict:
    return {"spec": {"holderIdentity": "m1", "leaseDurationSeconds": 15, "renewTime": renew}}


def test_silence_counts_from_the_last_change_we_saw() -> None:
    clock = lease_clock.RenewalClock()
    first = clock.observe("m1", _lease("2099-01-01T00:00:00.000000Z"), now=100.0)
    assert first.seconds == 0 and not first.renewal_seen
    assert clock.observe("m1", _lease("2099-01-01T00:00:00.000000Z"), now=110.0).seconds == 10
    renewed = clock.observe("m1", _lease("1999-01-01T00:00:05.000000Z"), now=112.0)  # any change counts, even backwards
    assert renewed.seconds == 0 and renewed.renewal_seen
    assert clock.observe("m1", _lease("1999-01-01T00:00:05.000000Z"), now=130.0).seconds == 18


def test_keys_are_independent_and_can_be_forgotten() -> None:
    clock = lease_clock.RenewalClock()
    clock.observe("a", _lease("t1"), now=0.0)
    clock.observe("b", _lease("t1"), now=5.0)
    assert clock.observe("a", _lease("t1"), now=10.0).seconds == 10
    assert clock.observe("b", _lease("t1"), now=10.0).seconds == 5
    clock.forget("a")
    assert clock.observe("a", _lease("t1"), now=20.0).seconds == 0


def test_our_own_outage_is_forgiven() -> None:
    clock = lease_clock.RenewalClock()
    clock.observe("m1", _lease("t1"), now=0.0)
    clock.blind(now=30.0)  # we could not read the API until t=30
    assert clock.observe("m1", _lease("t1"), now=31.0).seconds == 1
    assert clock.observe("m1", _lease("t1"), now=50.0).seconds == 20
