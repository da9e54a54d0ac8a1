"""The gateway process in front of fake replica processes, driven with the official openai SDK.

Routing by model, all four proxied endpoints, /v1/models, unknown model 404, no ready endpoint
503, streaming without buffering, retries before the first byte (dead replica, 503 replica),
no retry after it, client disconnect reaching the replica, and the metrics that record it all.
"""

from __future__ import annotations

import json
import time
import urllib.request

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)


def _stats(proc) -> dict:
    with urllib.request.urlopen(proc.url + "/fake/stats", timeout=5) as reply:
        return json.loads(reply.read())


def _metrics(gateway) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def cluster(start_fakes, start_fake, start_gateway):
    """Replicas A (alpha), B (beta), a dead one and a 503 one next to healthy ones, and the gateway."""
    fakes = start_fakes("A", "B", "R1", "S1", "S2", "D1", "D2")
    fakes.update(start_fakes("broken", extra=("--status", "503")))
    fakes.update(start_fakes("busy", extra=("--status", "429")))
    dead = start_fake("dead")
    dead.kill()  # a crashed replica: its port refuses connections
    config = {
        "models": [
            {"name": "alpha", "endpoints": [{"url": fakes["A"].url}]},
            {"name": "beta", "endpoints": [{"url": fakes["B"].url + "/"}]},
            {"name": "down", "endpoints": [{"url": fakes["A"].url, "ready": False}]},
            {"name": "flaky", "endpoints": [{"url": dead.url}, {"url": fakes["broken"].url},
                                            {"url": fakes["busy"].url}, {"url": fakes["R1"].url}]},
            {"name": "allbad", "endpoints": [{"url": dead.url}, {"url": fakes["broken"].url}]},
            {"name": "stream", "endpoints": [{"url": fakes["S1"].url}, {"url": fakes["S2"].url}]},
            {"name": "disc", "endpoints": [{"url": fakes["D1"].url}, {"url": fakes["D2"].url}]},
        ]
    }
    # flaky has 3 bad replicas of 4: 3 retries always reach the good one
    gateway, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_RETRIES": "3"})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    yield gateway, fakes, client
    client.close()


def test_routes_by_model_for_chat_completions_embeddings_and_rerank(cluster) -> None:
    _, fakes, client = cluster
    before = {name: _stats(fakes[name])["by_path"] for name in ("A", "B")}
    alpha = client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}])
    assert alpha.choices[0].message.content == "A-0 A-1 A-2"
    beta = client.completions.create(model="beta", prompt="hi")
    assert beta.choices[0].text == "B-0 B-1 B-2"
    embedding = client.embeddings.create(model="beta", input="hi")
    assert embedding.data[0].embedding == [0.5, 1.0]
    rerank = client.post("/rerank", cast_to=httpx.Response,
                         body={"model": "alpha", "query": "q", "documents": ["x", "y"]})
    assert [r["index"] for r in rerank.json()["results"]] == [0, 1]
    assert _new_paths(before["A"], _stats(fakes["A"])["by_path"]) == {"/v1/chat/completions": 1, "/v1/rerank": 1}
    assert _new_paths(before["B"], _stats(fakes["B"])["by_path"]) == {"/v1/completions": 1, "/v1/embeddings": 1}


def _new_paths(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests per path since `before` (paths without new requests left out)."""
    return {path: count - before.get(path, 0) for path, count in after.items() if count > before.get(path, 0)}


def test_models_are_listed_from_the_table(cluster) -> None:
    _, _, client = cluster
    assert sorted(m.id for m in client.models.list()) == [
        "allbad", "alpha", "beta", "disc", "down", "flaky", "stream"]
    assert client.models.retrieve("beta").id == "beta"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_unknown_model_is_404_naming_the_param(cluster) -> None:
    _, _, client = cluster
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["param"] == "model"
    assert caught.value.body["code"] == "model_not_found"


def test_bad_bodies_are_400_in_openai_shape(cluster) -> None:
    gateway, _, _ = cluster
    for body, param in ((b"{not json", None), (b'{"messages": []}', "model"), (b"[1]", None)):
        reply = httpx.post(gateway.url + "/v1/chat/completions", content=body, timeout=10)
        assert reply.status_code == 400
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        assert reply.json()["error"]["param"] == param
    reply = httpx.get(gateway.url + "/v1/nothing-here", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "unknown_url"


def test_no_ready_endpoint_is_503_with_a_clear_message(cluster) -> None:
    _, fakes, client = cluster
    before = _stats(fakes["A"])["requests"]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert "no ready endpoint" in caught.value.message
    assert _stats(fakes["A"])["requests"] == before  # the unready replica got nothing


def test_dead_503_and_full_replicas_are_retried_on_another(cluster) -> None:
    gateway, fakes, client = cluster
    for _ in range(6):
        reply = client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content.startswith("R1-0")
    assert _stats(fakes["R1"])["requests"] == 6
    assert _stats(fakes["broken"])["requests"] >= 1 and _stats(fakes["busy"])["requests"] >= 1
    metrics = _metrics(gateway)
    assert metrics[("llmserver_gateway_retries_total", (("model", "flaky"),))] >= 6
    errors = {labels: v for (name, labels), v in metrics.items() if name == "llmserver_gateway_upstream_errors_total"}
    reasons = {dict(labels)["reason"] for labels in errors if dict(labels)["model"] == "flaky"}
    assert reasons == {"connect", "status_503", "status_429"}


def test_when_every_replica_fails_the_last_answer_is_returned(cluster) -> None:
    _, _, client = cluster
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="allbad", messages=[{"role": "user", "content": "hi"}])
    # The order is least-load's choice: either the dead one (502, no answer) or the 503 one comes last.
    assert caught.value.status_code in (502, 503)
    assert set(caught.value.body) >= {"message", "type", "code"}


def test_streams_pass_through_chunk_by_chunk(cluster) -> None:
    _, _, client = cluster
    arrivals: list[float] = []
    text = ""
    stream = client.chat.completions.create(
        model="stream", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_body={"fake": {"chunks": 6, "delay_ms": 80}})
    for chunk in stream:
        arrivals.append(time.monotonic())
        text += chunk.choices[0].delta.content or ""
    words = text.split()
    replica = words[0].rsplit("-", 1)[0]
    assert words == [f"{replica}-{i}" for i in range(6)]
    assert len(arrivals) == 6
    # 5 gaps of 80 ms at the replica: a buffering proxy would deliver all chunks at once.
    assert arrivals[-1] - arrivals[0] > 0.2


def test_no_retry_after_the_first_byte(cluster) -> None:
    gateway, fakes, client = cluster
    before = _stats(fakes["S1"])["requests"] + _stats(fakes["S2"])["requests"]
    received = []
    with pytest.raises(openai.APIError) as caught:
        stream = client.chat.completions.create(
            model="stream", messages=[{"role": "user", "content": "hi"}], stream=True,
            extra_body={"fake": {"chunks": 6, "abort_after": 2}})
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert len(received) == 2  # what was sent before the replica died reached the client
    assert "middle of the stream" in str(caught.value)
    after = _stats(fakes["S1"])["requests"] + _stats(fakes["S2"])["requests"]
    assert after - before == 1  # nobody else was asked to generate it again
    metrics = _metrics(gateway)
    assert metrics.get(("llmserver_gateway_retries_total", (("model", "stream"),)), 0) == 0


def test_client_disconnect_closes_the_upstream_request(cluster) -> None:
    _, fakes, client = cluster

    def totals() -> tuple[int, int]:
        stats = [_stats(fakes["D1"]), _stats(fakes["D2"])]
        return sum(s["disconnected"] for s in stats), sum(s["completed_streams"] for s in stats)

    disconnected_before, completed_before = totals()
    stream = client.chat.completions.create(
        model="disc", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_body={"fake": {"chunks": 200, "delay_ms": 50}})
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        disconnected, completed = totals()
        if disconnected - disconnected_before == 1:
            break
        time.sleep(0.05)
    assert disconnected - disconnected_before == 1
    assert completed - completed_before == 0


def test_many_quick_disconnects_are_499s_without_errors(cluster) -> None:
    gateway, fakes, _ = cluster
    before = sum(_stats(fakes[n])["disconnected"] for n in ("D1", "D2"))
    for i in range(12):  # cut at different moments relative to the replica's writes
        body = {"model": "disc", "stream": True, "messages": [], "fake": {"chunks": 100, "delay_ms": 1 + i % 3}}
        with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=10) as reply:
            next(reply.iter_raw())
    deadline = time.monotonic() + 10
    while sum(_stats(fakes[n])["disconnected"] for n in ("D1", "D2")) - before < 12:
        assert time.monotonic() < deadline, "the replicas did not all see the client leave"
        time.sleep(0.05)
    assert _metrics(gateway)[("llmserver_gateway_requests_total", (("model", "disc"), ("status", "499")))] >= 12
    assert "Traceback" not in gateway.output()


def test_metrics_count_requests_latency_and_ttfb(cluster) -> None:
    gateway, _, client = cluster
    for _ in range(2):
        client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}])
    for _ in client.chat.completions.create(model="stream", messages=[{"role": "user", "content": "hi"}], stream=True):
        pass
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="random-name-123", messages=[{"role": "user", "content": "hi"}])
    metrics = _metrics(gateway)
    assert metrics[("llmserver_gateway_requests_total", (("model", "alpha"), ("status", "200")))] >= 2
    assert metrics[("llmserver_gateway_requests_total", (("model", "unknown"), ("status", "404")))] >= 1
    assert not any("random-name-123" in str(labels) for _, labels in metrics)  # no label explosion
    assert metrics[("llmserver_gateway_request_duration_seconds_count", (("model", "alpha"),))] >= 2
    assert metrics[("llmserver_gateway_time_to_first_byte_seconds_count", (("model", "stream"),))] >= 1
    in_flight = [v for (name, labels), v in metrics.items() if name == "llmserver_gateway_endpoint_in_flight"]
    assert in_flight and all(v == 0 for v in in_flight)  # everything finished, nothing leaked
    assert metrics[("llmserver_gateway_ready_endpoints", (("model", "flaky"),))] == 4
    assert metrics[("llmserver_gateway_ready_endpoints", (("model", "down"),))] == 0


def test_health_and_ready(cluster) -> None:
    gateway, _, _ = cluster
    assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200
    ready = httpx.get(gateway.url + "/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["models"] == 7
