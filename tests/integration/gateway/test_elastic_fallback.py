"""A fallback model answers while a model is cold (issue 18), through the real gateway process.

The cold model's requests go at once to its fallback (body `model` rewritten, header
`x-llmserver-served-by`), streaming too; demand still counts for the cold model in /internal/load;
traffic moves back as soon as the model has a ready endpoint; a fallback that is itself cold (or a
key that may not use it) means the request is held instead; metrics count the fallbacks.
"""

from __future__ import annotations

import concurrent.futures

import openai
import pytest

from integration.gateway import elastic_env
from integration.gateway.elastic_env import counts, wait_until

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "hi"}]
HEADER = "x-llmserver-served-by"


@pytest.fixture(scope="module")
def env(start_fakes, start_gateway):
    fakes = start_fakes("C", "W", "K", "V", "Q")
    config = {
        "models": [
            {"name": "big", "endpoints": [{"url": fakes["C"].url, "ready": False}],
             "autoscaling": {"holdSeconds": 30, "maxHeldRequests": 10, "fallback": "small"}},
            {"name": "small", "endpoints": [{"url": fakes["W"].url}]},
            {"name": "keyed", "endpoints": [{"url": fakes["K"].url, "ready": False}],
             "autoscaling": {"holdSeconds": 30, "fallback": "small"}},
            {"name": "chain", "endpoints": [{"url": fakes["V"].url, "ready": False}],
             "autoscaling": {"holdSeconds": 30, "fallback": "coldfb"}},
            {"name": "coldfb", "endpoints": [{"url": fakes["Q"].url, "ready": False}]},
        ],
        "apiKeys": [{"key": "sk-all", "models": ["*"]}, {"key": "sk-keyed", "models": ["keyed"]}],
    }
    gateway, path = start_gateway(config)
    setup = elastic_env.Elastic(gateway, path, config, fakes)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        setup.pool = pool  # type: ignore[attr-defined]
        yield setup


def _client(env: elastic_env.Elastic, key: str = "sk-all") -> openai.OpenAI:
    return openai.OpenAI(base_url=env.gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_the_fallback_answers_while_cold_and_traffic_moves_back_when_ready(env) -> None:
    env.set_ready("big", False)
    client = _client(env)
    small_models = len(env.stats("W")["models"])
    big_before = env.stats("C")["requests"]
    raw = client.chat.completions.with_raw_response.create(model="big", messages=MESSAGES)
    assert raw.headers[HEADER] == "small"
    assert raw.parse().choices[0].message.content == "W-0 W-1 W-2"
    assert env.stats("W")["models"][small_models:] == ["small"]  # the body's model was rewritten
    chunks = client.chat.completions.with_raw_response.create(model="big", messages=MESSAGES, stream=True)
    assert chunks.headers[HEADER] == "small"
    assert "".join(c.choices[0].delta.content or "" for c in chunks.parse()) == "W-0 W-1 W-2"
    assert env.stats("C")["requests"] == big_before
    env.set_ready("big", True)
    raw = client.chat.completions.with_raw_response.create(model="big", messages=MESSAGES)
    assert HEADER not in raw.headers
    assert raw.parse().choices[0].message.content == "C-0 C-1 C-2"
    metrics = env.metrics()
    assert metrics[("llmserver_gateway_fallback_requests_total", (("fallback", "small"), ("model", "big")))] >= 2
    env.set_ready("big", False)


def test_a_request_answered_by_the_fallback_counts_as_demand_for_the_cold_model(env) -> None:
    env.set_ready("big", False)
    slow = {"fake": {"sleep_ms": 1500}}
    reply = env.pool.submit(_client(env).chat.completions.with_raw_response.create, model="big",
                            messages=MESSAGES, extra_body=slow)
    load = wait_until(lambda: (l := env.load())["static/big"]["inFlight"] == 1 and l, what="the demand")
    assert load["static/big"] == {"model": "big", "inFlight": 1, "held": 0, "refused": 0}  # answered, not held
    assert load["static/small"] == {"model": "small", "inFlight": 1, "held": 0, "refused": 0}  # its replicas serve it
    assert reply.result(15).headers[HEADER] == "small"
    assert counts(env, "static/big") == (0, 0) and counts(env, "static/small") == (0, 0)


def test_a_key_that_may_not_use_the_fallback_is_held_instead(env) -> None:
    env.set_ready("keyed", False)
    client = _client(env, "sk-keyed")
    raw = env.pool.submit(client.chat.completions.with_raw_response.create, model="keyed", messages=MESSAGES)
    wait_until(lambda: counts(env, "static/keyed") == (1, 1), what="the request to be held")
    env.set_ready("keyed", True)
    answer = raw.result(15)
    assert HEADER not in answer.headers and answer.parse().choices[0].message.content == "K-0 K-1 K-2"
    env.set_ready("keyed", False)


def test_a_cold_fallback_is_not_used_and_a_fallback_that_warms_up_takes_the_held_request(env) -> None:
    env.set_ready("chain", False)
    env.set_ready("coldfb", False)
    raw = env.pool.submit(_client(env).chat.completions.with_raw_response.create, model="chain", messages=MESSAGES)
    wait_until(lambda: counts(env, "static/chain") == (1, 1), what="the request to be held")
    env.set_ready("coldfb", True)  # the fallback gets ready first: the held request goes there
    answer = raw.result(15)
    assert answer.headers[HEADER] == "coldfb" and answer.parse().choices[0].message.content == "Q-0 Q-1 Q-2"
    assert counts(env, "static/chain") == (0, 0)
    env.set_ready("coldfb", False)
