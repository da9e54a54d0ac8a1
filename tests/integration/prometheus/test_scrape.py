"""A real Prometheus scrapes a real runtime and a real gateway while the openai SDK sends traffic.

Processes (all on 127.0.0.1, stopped at the end): `llmserver-runtime serve --backend fake` (exact,
deterministic token counts), `llmserver-runtime gateway --config` routing to it, and Debian's
`prometheus` with a static 1 s scrape config. The token and latency series read back through
Prometheus' HTTP API must agree with what the clients saw; the chart's Grafana dashboard queries
must return data; both /metrics outputs must pass `promtool check metrics`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
import yaml

from testkit import fake_upstreams, helm, prometheus, runtime_server

pytestmark = pytest.mark.timeout(240)

MODEL = "tiny"
CHATS, STREAMS, COMPLETIONS = 5, 3, 2
FIRST_TOKEN_DELAY = 0.02


@dataclass
class World:
    runtime: runtime_server.RuntimeServer
    gateway: fake_upstreams.Proc
    prom: prometheus.Prometheus
    prompt_tokens: int
    completion_tokens: int
    ok_requests: int


def _traffic(client: openai.OpenAI) -> tuple[int, int, int]:
    """Chats, streamed chats (usage in the last chunk) and completions; returns (prompt, completion, ok)."""
    prompt = completion = ok = 0
    for i in range(CHATS):
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"question number {i} about rivers"}], max_tokens=8)
        prompt, completion, ok = prompt + reply.usage.prompt_tokens, completion + reply.usage.completion_tokens, ok + 1
    for i in range(STREAMS):
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"stream {i}"}], max_tokens=12, stream=True,
            stream_options={"include_usage": True})
        usage = [chunk.usage for chunk in stream if chunk.usage is not None]
        assert len(usage) == 1
        prompt, completion, ok = prompt + usage[0].prompt_tokens, completion + usage[0].completion_tokens, ok + 1
    for i in range(COMPLETIONS):
        reply = client.completions.create(model=MODEL, prompt=f"once upon a time {i}", max_tokens=6)
        prompt, completion, ok = prompt + reply.usage.prompt_tokens, completion + reply.usage.completion_tokens, ok + 1
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    return prompt, completion, ok


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("prometheus")
    extra = [f"first_token_delay={FIRST_TOKEN_DELAY}", "delay_per_token=0.001"]
    with runtime_server.start(tmp, "fake", "unused", MODEL, extra=extra) as runtime:
        config = tmp / "gateway.yaml"
        config.write_text(yaml.safe_dump({"models": [{"name": MODEL, "endpoints": [{"url": runtime.url, "ready": True}]}]}))
        gateway = fake_upstreams.start_gateway(tmp, "--config", str(config), ready="/ready")
        try:
            with prometheus.start(tmp / "prom", {"runtime": [runtime.url], "gateway": [gateway.url]}) as prom:
                prom.wait_for_targets()
                client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)
                prompt, completion, ok = _traffic(client)
                client.close()
                world = World(runtime, gateway, prom, prompt, completion, ok)
                # Counters are exact: wait until a scrape after the traffic shows all of it.
                prom.wait_until(lambda: _value(prom, f'llmserver_gateway_requests_total{{model="{MODEL}",status="200"}}')
                                == ok and _value(prom, f'llmserver_completion_tokens_total{{model="{MODEL}"}}')
                                == completion, 30, "the traffic in the scraped series")
                yield world
        finally:
            gateway.stop()


def _value(prom: prometheus.Prometheus, expr: str) -> float | None:
    result = prom.query(expr)
    return result[0][1] if len(result) == 1 else None


def test_both_targets_are_up(world: World) -> None:
    up = {labels["job"]: value for labels, value in world.prom.query("up")}
    assert up == {"runtime": 1.0, "gateway": 1.0}


def test_token_counters_match_the_usage_clients_saw(world: World) -> None:
    assert world.completion_tokens > 0 and world.prompt_tokens > 0
    prom = world.prom
    assert _value(prom, f'llmserver_prompt_tokens_total{{model="{MODEL}", job="runtime"}}') == world.prompt_tokens
    assert _value(prom, f'llmserver_completion_tokens_total{{model="{MODEL}", job="runtime"}}') == world.completion_tokens
    by_endpoint = {labels["endpoint"]: value for labels, value in
                   prom.query(f'sum by (endpoint) (llmserver_requests_total{{model="{MODEL}", status="200"}})')}
    assert by_endpoint == {"chat": CHATS + STREAMS, "completions": COMPLETIONS}


def test_latency_histograms(world: World) -> None:
    prom = world.prom
    generated = CHATS + STREAMS + COMPLETIONS
    assert _value(prom, f'llmserver_time_to_first_token_seconds_count{{model="{MODEL}"}}') == generated
    assert _value(prom, f'llmserver_gateway_request_duration_seconds_count{{model="{MODEL}"}}') == world.ok_requests
    assert _value(prom, f'llmserver_gateway_time_to_first_byte_seconds_count{{model="{MODEL}"}}') == world.ok_requests
    ttft_p50 = _value(prom, f'histogram_quantile(0.5, sum by (le) (llmserver_time_to_first_token_seconds_bucket{{model="{MODEL}"}}))')
    assert ttft_p50 is not None and FIRST_TOKEN_DELAY / 2 <= ttft_p50 <= 1.0
    # The gateway's end-to-end latency includes the runtime's time to first token.
    mean_latency = _value(prom, f'llmserver_gateway_request_duration_seconds_sum{{model="{MODEL}"}} / '
                                f'llmserver_gateway_request_duration_seconds_count{{model="{MODEL}"}}')
    assert mean_latency is not None and mean_latency >= FIRST_TOKEN_DELAY


def test_errors_are_counted(world: World) -> None:
    statuses = {labels["status"]: value for labels, value in
                world.prom.query('sum by (status) (llmserver_gateway_requests_total{job="gateway"})')}
    assert statuses == {"200": world.ok_requests, "404": 1.0}


def test_dashboard_queries_return_data(world: World) -> None:
    """The chart's Grafana panels, evaluated by this Prometheus, show the traffic."""
    dashboard = json.loads((helm.CHART / "monitoring" / "dashboard.json").read_text())
    exprs = {panel["title"]: [t["expr"].replace("$__rate_interval", "1m").replace("$model", ".*")
                              for t in panel["targets"]] for panel in dashboard["panels"]}
    titles = ("Generated tokens/s", "Prompt tokens/s", "Time to first token (p50, p95)", "Errors/s",
              "Requests/s through the gateway", "Ready endpoints per model", "Model load time")
    wanted = [exprs[title][0] for title in titles] + exprs["Time to first token (p50, p95)"]
    # rate() needs two samples of a series: wait (bounded) for the scrapes after the traffic.
    world.prom.wait_until(lambda: all(world.prom.query(expr) for expr in wanted), 30, "every panel has data")
    for title in titles:
        result = world.prom.query(exprs[title][0])
        models = {labels.get("model") for labels, _ in result}
        # Requests for a model the gateway does not know count under "unknown" (bounded labels).
        expected = {"Errors/s": {"unknown"}, "Requests/s through the gateway": {MODEL, "unknown"}}.get(title, {MODEL})
        assert models == expected, (title, result)
    assert world.prom.query(exprs["Generated tokens/s"][0])[0][1] > 0
    assert world.prom.query(exprs["Ready endpoints per model"][0]) == [({"model": MODEL}, 1.0)]
    errors = world.prom.query(exprs["Errors/s"][0])
    assert [labels["status"] for labels, _ in errors] == ["404"]
    for labels, value in world.prom.query(exprs["Time to first token (p50, p95)"][1]):
        assert FIRST_TOKEN_DELAY / 2 <= value <= 1.0, (labels, value)


@pytest.mark.parametrize("target", ["runtime", "gateway"])
def test_metrics_pass_promtool(world: World, target: str) -> None:
    url = world.runtime.url if target == "runtime" else world.gateway.url
    status, text = runtime_server.get(url + "/metrics")
    assert status == 200 and "llmserver_" in text
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr
    expected_prefix = "llmserver_gateway_" if target == "gateway" else "llmserver_"
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names and all(name.startswith(expected_prefix) for name in names), names

