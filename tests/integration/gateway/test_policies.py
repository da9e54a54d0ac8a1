"""Balancing through the real gateway: least-load spreads concurrent work, prefix-hash keeps a
shared prompt prefix on one replica (so its prefix cache is reused) and spreads other prefixes."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request

import openai
import pytest

pytestmark = pytest.mark.timeout(120)


def _requests(replica) -> int:
    with urllib.request.urlopen(replica.url + "/fake/stats", timeout=5) as reply:
        return json.loads(reply.read())["requests"]


@pytest.fixture(scope="module")
def setup(start_fakes, start_gateway):
    least = start_fakes("L1", "L2", "L3")
    prefix = start_fakes("P1", "P2", "P3")
    config = {"models": [
        {"name": "least", "endpoints": [{"url": r.url} for r in least.values()]},
        {"name": "cached", "policy": "PrefixHash", "endpoints": [{"url": r.url} for r in prefix.values()]},
    ]}
    gateway, _ = start_gateway(config)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    yield client, least, prefix
    client.close()


def test_least_outstanding_spreads_concurrent_requests(setup) -> None:
    client, least, _ = setup

    def one(i: int) -> str:
        stream = client.chat.completions.create(
            model="least", messages=[{"role": "user", "content": f"q{i}"}], stream=True,
            extra_body={"fake": {"chunks": 5, "delay_ms": 60}})
        return "".join(c.choices[0].delta.content or "" for c in stream)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        texts = list(pool.map(one, range(12)))
    assert all(t for t in texts)
    counts = [_requests(r) for r in least.values()]
    assert sum(counts) == 12
    assert min(counts) >= 2, counts  # an even split is 4 each; a policy-less proxy could send all to one


def test_prefix_hash_keeps_a_shared_prefix_on_one_replica(setup) -> None:
    client, _, prefix = setup
    system = "You are a support bot for ACME. Product manual follows. " + "Section text. " * 30
    before = [_requests(r) for r in prefix.values()]
    served_by = set()
    for i in range(9):
        reply = client.chat.completions.create(
            model="cached",
            messages=[{"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}])
        served_by.add(reply.choices[0].message.content.split("-")[0])
    after = [_requests(r) for r in prefix.values()]
    assert len(served_by) == 1
    assert sorted(a - b for a, b in zip(after, before, strict=True)) == [0, 0, 9]


def test_prefix_hash_spreads_different_prefixes(setup) -> None:
    client, _, _ = setup
    served_by = set()
    for i in range(12):
        reply = client.completions.create(model="cached", prompt=f"Document number {i}: " + "lorem ipsum " * 20)
        served_by.add(reply.choices[0].text.split("-")[0])
    assert len(served_by) >= 2  # 12 prefixes on 3 replicas all landing on one: p ~ 3 * 3**-12
