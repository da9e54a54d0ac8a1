"""Scale from zero with the request held (issue 18), through the real gateway process.

The gateway runs on a static config whose endpoints the test marks ready (as local mode does when
a model has loaded); the client is the official openai SDK. Held requests are answered once the
table gets a ready endpoint (timing printed), streaming too; the hold bound gives 429, the hold
timeout 503, both with Retry-After; a client that leaves stops being held; wakeUrl is POSTed at
most once a second; the metrics record it all.
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import openai
import pytest

from integration.gateway import elastic_env
from integration.gateway.elastic_env import counts, wait_until

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "hi"}]


def _cold(name: str, url: str, hold: int = 30, max_held: int = 10, **extra) -> dict:
    return {"name": name, "endpoints": [{"url": url, "ready": False}],
            "autoscaling": {"holdSeconds": hold, "maxHeldRequests": max_held}, **extra}


@pytest.fixture(scope="module")
def env(start_fakes, start_gateway, listen):
    fakes = start_fakes("H", "S", "B", "T", "X", "G")
    waker = listen()
    config = {"models": [
        _cold("held", fakes["H"].url, wakeUrl=waker.url + "/wake/held"),
        _cold("stream-held", fakes["S"].url),
        _cold("bounded", fakes["B"].url, max_held=2),
        _cold("short", fakes["T"].url, hold=1),
        _cold("nohold", fakes["X"].url, hold=0),
        {"name": "wakeonly", "endpoints": [{"url": fakes["X"].url, "ready": False}],
         "wakeUrl": waker.url + "/wake/wakeonly"},
        _cold("gone", fakes["G"].url),
    ]}
    gateway, path = start_gateway(config)
    setup = elastic_env.Elastic(gateway, path, config, fakes)
    setup.waker = waker  # type: ignore[attr-defined]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        setup.pool = pool  # type: ignore[attr-defined]
        yield setup


def _client(env: elastic_env.Elastic, timeout: float = 60) -> openai.OpenAI:
    return openai.OpenAI(base_url=env.gateway.url + "/v1", api_key="unused", max_retries=0, timeout=timeout)


def test_a_held_request_is_answered_once_an_endpoint_is_ready(env) -> None:
    env.set_ready("held", False)
    client = _client(env)
    served_before = env.stats("H")["requests"]
    began = time.perf_counter()

    def ask() -> tuple[object, float]:
        answer = client.chat.completions.create(model="held", messages=MESSAGES)
        return answer, time.perf_counter()

    reply = env.pool.submit(ask)
    wait_until(lambda: counts(env, "static/held") == (1, 1), what="the request to be held")
    time.sleep(0.5)
    assert not reply.done()  # held: no answer, no error while no endpoint is ready
    assert env.stats("H")["requests"] == served_before
    ready_at = env.set_ready("held", True)
    answer, answered_at = reply.result(15)
    assert answer.choices[0].message.content == "H-0 H-1 H-2"
    print(f"\nheld request: held {ready_at - began:.2f} s, answered {answered_at - ready_at:.3f} s after the "
          "endpoint was marked ready (includes the config poll of 0.1 s)")
    assert answered_at - ready_at < 5
    assert counts(env, "static/held") == (0, 0)
    metrics = env.metrics()
    assert metrics[("llmserver_gateway_held_requests", (("model", "held"),))] == 0
    assert metrics[("llmserver_gateway_hold_seconds_count", (("model", "held"),))] >= 1
    # Once ready, the next request goes straight through.
    assert client.chat.completions.create(model="held", messages=MESSAGES).choices[0].message.content == "H-0 H-1 H-2"


def test_a_held_streaming_request_sends_nothing_until_forwarded(env) -> None:
    env.set_ready("stream-held", False)
    received: list[tuple[float, str]] = []

    def stream() -> None:
        with httpx.stream("POST", env.gateway.url + "/v1/chat/completions", timeout=60,
                          json={"model": "stream-held", "messages": MESSAGES, "stream": True}) as reply:
            received.append((time.perf_counter(), f"status {reply.status_code}"))
            for line in reply.iter_lines():
                if line:
                    received.append((time.perf_counter(), line))

    done = env.pool.submit(stream)
    wait_until(lambda: counts(env, "static/stream-held") == (1, 1), what="the stream to be held")
    time.sleep(0.3)
    assert received == []  # not even the status line went out while held
    ready_at = env.set_ready("stream-held", True)
    done.result(15)
    assert received[0][1] == "status 200" and received[0][0] >= ready_at
    assert received[-1][1] == "data: [DONE]"
    assert "S-0" in received[1][1]
    # The SDK reads the same stream once the model is warm.
    chunks = _client(env).chat.completions.create(model="stream-held", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "S-0 S-1 S-2"


def test_beyond_max_held_requests_is_a_429_with_retry_after(env) -> None:
    env.set_ready("bounded", False)
    client = _client(env)
    held = [env.pool.submit(client.chat.completions.create, model="bounded", messages=MESSAGES) for _ in range(2)]
    wait_until(lambda: counts(env, "static/bounded") == (2, 2), what="two held requests")
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="bounded", messages=MESSAGES)
    assert refused.value.response.headers["Retry-After"] == "5"
    assert set(refused.value.body) == {"message", "type", "param", "code"}
    assert refused.value.body["code"] == "rate_limit_exceeded"
    assert env.metrics()[("llmserver_gateway_hold_rejected_total", (("model", "bounded"), ("reason", "limit")))] >= 1
    env.set_ready("bounded", True)
    assert [f.result(15).choices[0].message.content for f in held] == ["B-0 B-1 B-2"] * 2
    assert counts(env, "static/bounded") == (0, 0)


def test_hold_seconds_elapsed_is_a_503_with_retry_after(env) -> None:
    env.set_ready("short", False)
    began = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as timed_out:
        _client(env).chat.completions.create(model="short", messages=MESSAGES)
    waited = time.perf_counter() - began
    print(f"\nhold timeout: 503 after {waited:.2f} s (holdSeconds 1)")
    assert 1 <= waited < 5
    assert timed_out.value.status_code == 503 and timed_out.value.response.headers["Retry-After"] == "5"
    assert "within 1 s" in timed_out.value.message
    assert env.metrics()[("llmserver_gateway_hold_rejected_total", (("model", "short"), ("reason", "timeout")))] >= 1
    assert counts(env, "static/short") == (0, 0) and env.stats("T")["requests"] == 0  # never ready


def test_hold_seconds_zero_answers_503_at_once(env) -> None:
    began = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as caught:
        _client(env).chat.completions.create(model="nohold", messages=MESSAGES)
    # at once: far inside the 30 s that every held model here waits (a loaded CI machine takes its time)
    assert caught.value.status_code == 503 and time.perf_counter() - began < 5
    assert "no ready endpoint" in caught.value.message and caught.value.response.headers["Retry-After"]
    # over at once, yet still demand for the autoscaler, which reads every second: reported for 10 s
    assert env.load()["static/nohold"] == {"model": "nohold", "inFlight": 0, "held": 0, "refused": 1}


def test_a_client_that_leaves_while_held_is_no_longer_held(env) -> None:
    env.set_ready("held", False)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(env.gateway.url + "/v1/chat/completions", json={"model": "held", "messages": MESSAGES},
                   timeout=httpx.Timeout(10, read=0.5))
    wait_until(lambda: counts(env, "static/held") == (0, 0), timeout=5, what="the gone client to be dropped")
    metrics = env.metrics()
    assert metrics[("llmserver_gateway_held_requests", (("model", "held"),))] == 0
    assert metrics[("llmserver_gateway_requests_total", (("model", "held"), ("status", "499")))] >= 1
    env.set_ready("held", True)


def test_a_model_removed_while_held_is_a_404(env) -> None:
    reply = env.pool.submit(_client(env).chat.completions.create, model="gone", messages=MESSAGES)
    wait_until(lambda: counts(env, "static/gone") == (1, 1), what="the request to be held")
    saved = env.config["models"]
    env.config["models"] = [m for m in saved if m["name"] != "gone"]
    try:
        env.write()
        with pytest.raises(openai.NotFoundError):
            reply.result(15)
    finally:
        env.config["models"] = saved
        env.set_ready("gone", False)


def test_wake_url_is_posted_at_most_once_a_second_per_model(env) -> None:
    waker = env.waker

    def wakes(model: str) -> int:
        return sum(1 for r in waker.requests if r["path"] == f"/wake/{model}")

    before = wakes("wakeonly")
    client = _client(env)
    began = time.perf_counter()
    for _ in range(5):
        with pytest.raises(openai.APIStatusError):  # not held (no autoscaling): 503, but woken
            client.chat.completions.create(model="wakeonly", messages=MESSAGES)
    burst = time.perf_counter() - began
    wait_until(lambda: wakes("wakeonly") == before + 1, timeout=5, what="the wake POST")
    posted = [r for r in waker.requests if r["path"] == "/wake/wakeonly"][-1]
    assert posted["method"] == "POST" and posted["body"] == b""
    if burst < 0.9:
        time.sleep(0.2)
        assert wakes("wakeonly") == before + 1  # the burst woke it once
    time.sleep(1.1)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="wakeonly", messages=MESSAGES)
    wait_until(lambda: wakes("wakeonly") == before + 2, timeout=5, what="a second wake after a second")


def test_a_held_request_wakes_its_model(env) -> None:
    env.set_ready("held", False)
    time.sleep(1.1)  # past the once-a-second bound of an earlier test's wake
    before = sum(1 for r in env.waker.requests if r["path"] == "/wake/held")
    reply = env.pool.submit(_client(env).chat.completions.create, model="held", messages=MESSAGES)
    wait_until(lambda: sum(1 for r in env.waker.requests if r["path"] == "/wake/held") > before, timeout=5,
               what="the wake POST")
    env.set_ready("held", True)
    assert reply.result(15).choices[0].message.content == "H-0 H-1 H-2"
