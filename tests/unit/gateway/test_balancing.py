"""Balancing policies: least outstanding spreads load; prefix-hash keeps a prefix on one replica."""

from __future__ import annotations

import collections

from llmserver_gateway import balancing, table

URLS = [f"http://10.0.0.{i}:8080" for i in range(1, 5)]


def _route(policy: table.Policy, urls=URLS, ready=None) -> table.Route:
    ready = ready or {}
    return table.Route(
        model="m", policy=policy, endpoints=tuple(table.Endpoint(u, ready=ready.get(u, True)) for u in urls)
    )


def test_least_outstanding_prefers_the_idlest_endpoint() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.LEAST_OUTSTANDING)
    for url in URLS[:3]:
        balancer.acquire(url)
        balancer.acquire(url)
    assert balancer.pick(route).url == URLS[3]
    balancer.acquire(URLS[3])
    balancer.acquire(URLS[3])
    balancer.acquire(URLS[3])
    assert balancer.pick(route).url in URLS[:3]


def test_least_outstanding_spreads_concurrent_requests_evenly() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.LEAST_OUTSTANDING)
    for _ in range(40):  # 40 requests in flight at once
        balancer.acquire(balancer.pick(route).url)
    assert sorted(balancer.in_flight.values()) == [10, 10, 10, 10]


def test_idle_pool_rotates_instead_of_always_taking_the_first() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.LEAST_OUTSTANDING)
    picked = {balancer.pick(route).url for _ in range(8)}
    assert picked == set(URLS)


def test_unready_and_excluded_endpoints_are_never_picked() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.LEAST_OUTSTANDING, ready={URLS[0]: False, URLS[1]: False})
    assert {balancer.pick(route, exclude=[URLS[2]]).url for _ in range(10)} == {URLS[3]}
    assert balancer.pick(route, exclude=[URLS[2], URLS[3]]) is None


def test_release_returns_counts_to_zero() -> None:
    balancer = balancing.Balancer()
    balancer.acquire(URLS[0])
    balancer.release(URLS[0])
    balancer.release(URLS[0])  # an extra release never goes negative
    assert balancer.in_flight == {}


def test_prefix_hash_sends_a_shared_prefix_to_one_replica() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.PREFIX_HASH)
    chosen = {balancer.pick(route, prefix="You are a helpful assistant. Context: ...").url for _ in range(50)}
    assert len(chosen) == 1


def test_prefix_hash_spreads_different_prefixes() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.PREFIX_HASH)
    counts = collections.Counter(balancer.pick(route, prefix=f"document {i}").url for i in range(400))
    assert set(counts) == set(URLS)
    assert min(counts.values()) > 40  # roughly a quarter each (64 virtual nodes per replica)


def test_prefix_hash_is_stable_across_balancers_and_minimal_on_removal() -> None:
    prefixes = [f"system prompt {i}" for i in range(200)]
    first = balancing.Balancer()
    second = balancing.Balancer()
    route = _route(table.Policy.PREFIX_HASH)
    before = {p: first.pick(route, prefix=p).url for p in prefixes}
    assert before == {p: second.pick(route, prefix=p).url for p in prefixes}  # two gateways agree
    smaller = _route(table.Policy.PREFIX_HASH, urls=URLS[:3])
    after = {p: first.pick(smaller, prefix=p).url for p in prefixes}
    moved = [p for p in prefixes if before[p] != after[p]]
    assert all(before[p] == URLS[3] for p in moved)  # only the removed replica's prefixes move


def test_prefix_hash_bounds_the_load_of_a_hot_prefix() -> None:
    balancer = balancing.Balancer(load_factor=1.25)
    route = _route(table.Policy.PREFIX_HASH)
    home = balancer.pick(route, prefix="hot").url
    for _ in range(20):
        balancer.acquire(balancer.pick(route, prefix="hot").url)
    total = sum(balancer.in_flight.values())
    assert total == 20
    # ceil(1.25 * 20 / 4) = 7: no replica carries more, and the hot prefix's home is full
    assert max(balancer.in_flight.values()) <= 7
    assert balancer.in_flight[home] == 7


def test_prefix_hash_without_a_prompt_falls_back_to_least_load() -> None:
    balancer = balancing.Balancer()
    route = _route(table.Policy.PREFIX_HASH)
    for _ in range(8):
        balancer.acquire(balancer.pick(route, prefix=None).url)
    assert sorted(balancer.in_flight.values()) == [2, 2, 2, 2]


def test_prompt_prefix_reads_messages_prompts_and_inputs() -> None:
    system = "S" * 300
    chat = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q1"}]}
    other = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q2"}]}
    assert balancing.prompt_prefix(chat, 256) == balancing.prompt_prefix(other, 256)
    assert len(balancing.prompt_prefix(chat, 256)) == 256
    short = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}]}
    assert balancing.prompt_prefix(short, 256) == "<user>hi"
    assert balancing.prompt_prefix({"prompt": ["abcdef", "x"]}, 3) == "abc"
    assert balancing.prompt_prefix({"prompt": [1, 2, 3]}, 2) == "1,2"
    assert balancing.prompt_prefix({"input": "text"}, 10) == "text"
    assert balancing.prompt_prefix({"model": "m"}, 10) is None
