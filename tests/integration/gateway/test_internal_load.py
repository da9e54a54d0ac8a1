"""`GET /internal/load` under concurrency: exact counts while requests run or are held, 0 after.

The operator's autoscaler sums these counts over every gateway replica, so they must be exact:
20 requests in flight and 6 held read as 20 and 6 (held included in inFlight), clients that leave
mid-request or while held are dropped at once, and everything returns to 0.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from integration.gateway import elastic_env
from integration.gateway.elastic_env import counts, wait_until

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def env(start_fakes, start_gateway):
    fakes = start_fakes("L1", "L2", "Z")
    config = {"models": [
        {"name": "busy", "endpoints": [{"url": fakes["L1"].url}, {"url": fakes["L2"].url}]},
        {"name": "sleepy", "endpoints": [{"url": fakes["Z"].url, "ready": False}],
         "autoscaling": {"holdSeconds": 60, "maxHeldRequests": 50}},
    ]}
    gateway, path = start_gateway(config)
    yield elastic_env.Elastic(gateway, path, config, fakes)


def test_the_route_list_shows_idle_models_at_zero(env) -> None:
    reply = httpx.get(env.gateway.url + "/internal/load", timeout=5)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    servers = reply.json()["servers"]
    assert servers["static/busy"] == {"model": "busy", "inFlight": 0, "held": 0, "refused": 0}
    assert servers["static/sleepy"] == {"model": "sleepy", "inFlight": 0, "held": 0, "refused": 0}
    assert httpx.post(env.gateway.url + "/internal/load", timeout=5).status_code == 405


def test_counts_are_exact_under_concurrency_and_drop_back_to_zero(env) -> None:
    env.set_ready("sleepy", False)
    client = openai.OpenAI(base_url=env.gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    slow = {"fake": {"sleep_ms": 2500}}
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        running = [pool.submit(client.chat.completions.create, model="busy", messages=MESSAGES, extra_body=slow)
                   for _ in range(20)]
        held = [pool.submit(client.chat.completions.create, model="sleepy", messages=MESSAGES) for _ in range(6)]
        leaving = [pool.submit(_leave_after, env, model, 0.7) for model in ("busy",) * 4 + ("sleepy",) * 3]
        wait_until(lambda: counts(env, "static/busy") == (24, 0) and counts(env, "static/sleepy") == (9, 9),
                   what="20+4 running and 6+3 held requests")
        wait_until(lambda: all(f.done() for f in leaving), what="the leaving clients to leave")
        wait_until(lambda: counts(env, "static/busy") == (20, 0) and counts(env, "static/sleepy") == (6, 6),
                   timeout=2, what="the clients that left to be dropped")
        assert env.metrics()[("llmserver_gateway_held_requests", (("model", "sleepy"),))] == 6
        env.set_ready("sleepy", True)
        assert [f.result(30).choices[0].message.content for f in running].count("L1-0 L1-1 L1-2") in range(6, 15)
        assert {f.result(30).choices[0].message.content for f in held} == {"Z-0 Z-1 Z-2"}
    assert counts(env, "static/busy") == (0, 0) and counts(env, "static/sleepy") == (0, 0)
    assert env.metrics()[("llmserver_gateway_held_requests", (("model", "sleepy"),))] == 0


def _leave_after(env: elastic_env.Elastic, model: str, seconds: float) -> None:
    body = {"model": model, "messages": MESSAGES, "fake": {"sleep_ms": 10_000}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(env.gateway.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(10, read=seconds))
