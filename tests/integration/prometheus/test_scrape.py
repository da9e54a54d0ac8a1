"""A real Prometheus scrapes a real runtime, a real gateway and the real operator.

Processes (all on 127.0.0.1, stopped at the end): `llmserver-runtime serve --backend fake` (exact,
deterministic token counts), `llmserver-gateway --config` routing to it, the operator (kopf
on a thread, against the API emulator) with its /metrics on loopback, and Debian's `prometheus`
with a static 1 s scrape config. The openai SDK sends traffic through the gateway; the operator
reconciles one LLMServer that becomes Ready and one that waits for its Secret. The token, latency
and operator series read back through Prometheus' HTTP API must agree with what the clients and the
operator saw; the chart's Grafana dashboard queries must return data; every /metrics output must
pass `promtool check metrics`.

Every read of a series polls (bounded in time) until the scraped value is the expected one: on a
loaded machine a scrape can land between the client's answer and the server's bookkeeping, or time
out and mark the target's series stale for a moment. Values are still compared exactly, and a
counter overshooting (double counting) never comes back down, so it still fails.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import prometheus_client.parser
import pytest
import yaml
from testkit import emulator, fake_upstreams, helm, operator_thread, ports, prometheus, runtime_server

pytestmark = pytest.mark.timeout(300)

MODEL = "tiny"
CHATS, STREAMS, COMPLETIONS = 5, 3, 2
FIRST_TOKEN_DELAY = 0.02
WAIT = 60.0  # seconds any one series may take to show the expected value
LLMS = "serving.llmserver.dev/v1alpha1"


@dataclass
class World:
    runtime: runtime_server.RuntimeServer
    gateway: fake_upstreams.Proc
    operator_url: str
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


def _servers(kube: emulator.KubeEmulator) -> None:
    """One LLMServer that becomes Ready (Proxy) and one that waits for a Secret nobody creates."""
    for name, secret in (("ready", None), ("waiting", {"name": "missing", "key": "apiKey"})):
        proxy = {"url": "https://api.example/v1", **({"apiKeySecretRef": secret} if secret else {})}
        kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": name, "namespace": "ml"},
                     "spec": {"model": name, "mode": "Proxy", "proxy": proxy}})
    kube.wait_for(lambda: {name: ((kube.get(LLMS, "LLMServer", name, "ml") or {}).get("status") or {}).get("phase")
                           for name in ("ready", "waiting")} == {"ready": "Ready", "waiting": "Pending"}, 60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("prometheus")
    extra = [f"first_token_delay={FIRST_TOKEN_DELAY}", "delay_per_token=0.001"]
    with (emulator.KubeEmulator(crds=emulator.project_crds()) as kube,
          operator_thread.OperatorThread(kube.kubeconfig, metrics_port=ports.free_port(), metrics_address="127.0.0.1",
                                         retry_delay_seconds=1.0, apple_enabled=False) as operator,
          runtime_server.start(tmp, "fake", "unused", MODEL, extra=extra) as runtime):
        _servers(kube)
        operator_url = f"http://127.0.0.1:{operator.settings.metrics_port}"
        config = tmp / "gateway.yaml"
        config.write_text(yaml.safe_dump({"models": [{"name": MODEL, "endpoints": [{"url": runtime.url, "ready": True}]}]}))
        gateway = fake_upstreams.start_gateway(tmp, "--config", str(config), ready="/ready")
        try:
            jobs = {"runtime": [runtime.url], "gateway": [gateway.url], "operator": [operator_url]}
            with prometheus.start(tmp / "prom", jobs) as prom:
                prom.wait_for_targets()
                client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)
                prompt, completion, ok = _traffic(client)
                client.close()
                yield World(runtime, gateway, operator_url, prom, prompt, completion, ok)
        finally:
            gateway.stop()


def _value(prom: prometheus.Prometheus, expr: str) -> float | None:
    result = prom.query(expr)
    return result[0][1] if len(result) == 1 else None


def _eventually(prom: prometheus.Prometheus, read: Callable[[], object], expected: object, what: str) -> None:
    """Polls `read()` (a query through Prometheus) until it equals `expected`, at most WAIT seconds."""
    last: list[object] = []

    def equal() -> bool:
        last[:] = [read()]
        return last[0] == expected

    try:
        prom.wait_until(equal, WAIT, what)
    except AssertionError:
        raise AssertionError(f"{what}: Prometheus shows {last[0] if last else None!r}, expected {expected!r}") from None


def _present(prom: prometheus.Prometheus, expr: str) -> list[tuple[dict[str, str], float]]:
    """The query's series once there are any (a stale moment after a failed scrape passes)."""
    return prom.wait_until(lambda: prom.query(expr), WAIT, f"data for {expr}")


def _series(prom: prometheus.Prometheus, expr: str, label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for labels, value in prom.query(expr)}


def test_every_target_is_up(world: World) -> None:
    _eventually(world.prom, lambda: _series(world.prom, "up", "job"), {"runtime": 1.0, "gateway": 1.0, "operator": 1.0},
                "up of every target")


def test_token_counters_match_the_usage_clients_saw(world: World) -> None:
    assert world.completion_tokens > 0 and world.prompt_tokens > 0
    prom = world.prom
    _eventually(prom, lambda: _value(prom, f'llmserver_prompt_tokens_total{{model="{MODEL}", job="runtime"}}'),
                world.prompt_tokens, "prompt tokens")
    _eventually(prom, lambda: _value(prom, f'llmserver_completion_tokens_total{{model="{MODEL}", job="runtime"}}'),
                world.completion_tokens, "completion tokens")
    _eventually(prom, lambda: _series(prom, f'sum by (endpoint) (llmserver_requests_total{{model="{MODEL}", status="200"}})',
                                      "endpoint"),
                {"chat": CHATS + STREAMS, "completions": COMPLETIONS}, "runtime requests by endpoint")


def test_latency_histograms(world: World) -> None:
    prom = world.prom
    generated = CHATS + STREAMS + COMPLETIONS
    for expr, expected in ((f'llmserver_time_to_first_token_seconds_count{{model="{MODEL}"}}', generated),
                           (f'llmserver_gateway_request_duration_seconds_count{{model="{MODEL}"}}', world.ok_requests),
                           (f'llmserver_gateway_time_to_first_byte_seconds_count{{model="{MODEL}"}}', world.ok_requests)):
        _eventually(prom, lambda e=expr: _value(prom, e), expected, expr)
    # With every observation in (above), the quantile and the mean are those of the whole traffic.
    [(_, ttft_p50)] = _present(
        prom, f'histogram_quantile(0.5, sum by (le) (llmserver_time_to_first_token_seconds_bucket{{model="{MODEL}"}}))')
    assert FIRST_TOKEN_DELAY / 2 <= ttft_p50 <= 1.0
    # The gateway's end-to-end latency includes the runtime's time to first token.
    [(_, mean_latency)] = _present(prom, f'llmserver_gateway_request_duration_seconds_sum{{model="{MODEL}"}} / '
                                         f'llmserver_gateway_request_duration_seconds_count{{model="{MODEL}"}}')
    assert mean_latency >= FIRST_TOKEN_DELAY


def test_errors_are_counted(world: World) -> None:
    _eventually(world.prom, lambda: _series(world.prom, 'sum by (status) (llmserver_gateway_requests_total{job="gateway"})',
                                            "status"),
                {"200": world.ok_requests, "404": 1.0}, "gateway requests by status")


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in prometheus_client.parser.text_string_to_metric_families(text) for sample in family.samples}


def test_operator_series(world: World) -> None:
    """The operator's phase gauge and reconcile counters, read back through Prometheus, are the operator's."""
    prom = world.prom
    _eventually(prom, lambda: _series(prom, 'llmserver_operator_llmservers{job="operator"} > 0', "phase"),
                {"Ready": 1.0, "Pending": 1.0}, "LLMServers by phase")
    # Nothing changes for the Ready server any more: its success count is final and Prometheus must
    # show exactly what the operator serves. The waiting one keeps re-checking its Secret (retry).
    success = _scrape(world.operator_url)[("llmserver_operator_reconciles_total", (("result", "success"),))]
    assert success >= 1  # the Ready server (the waiting one ends each pass with "retry")
    _eventually(prom, lambda: _value(prom, 'llmserver_operator_reconciles_total{job="operator", result="success"}'),
                success, "successful reconciles")
    for result in ("error", "conflict"):
        _eventually(prom, lambda r=result: _value(prom, f'llmserver_operator_reconciles_total{{job="operator", result="{r}"}}'),
                    0.0, f"{result} reconciles")
    prom.wait_until(lambda: (_value(prom, 'rate(llmserver_operator_reconciles_total{job="operator", result="retry"}[10s])')
                             or 0) > 0, WAIT, "retries of the server waiting for its Secret")
    # Status is written only when it changes: the count of status patches is final too.
    key = ("llmserver_operator_kube_requests_total", (("code", "200"), ("resource", "llmservers/status"), ("verb", "patch")))
    patches = _scrape(world.operator_url)[key]
    assert patches >= 2
    _eventually(prom, lambda: _value(prom, 'llmserver_operator_kube_requests_total{job="operator", verb="patch", '
                                           'resource="llmservers/status", code="200"}'), patches, "status patches")


def test_dashboard_queries_return_data(world: World) -> None:
    """The chart's Grafana panels, evaluated by this Prometheus, show the traffic and the operator."""
    dashboard = json.loads((helm.CHART / "monitoring" / "dashboard.json").read_text())
    exprs = {panel["title"]: [t["expr"].replace("$__rate_interval", "1m").replace("$model", ".*")
                              for t in panel["targets"]] for panel in dashboard["panels"] if panel["type"] != "row"}
    prom = world.prom

    def models(title: str, index: int = 0) -> set[str | None]:
        return {labels.get("model") for labels, _ in prom.query(exprs[title][index])}

    # Requests for a model the gateway does not know count under "unknown" (bounded labels).
    expected = {"Generated tokens/s": {MODEL}, "Prompt tokens/s": {MODEL}, "Time to first token (p50, p95)": {MODEL},
                "Errors/s": {"unknown"}, "Requests/s through the gateway": {MODEL, "unknown"},
                "Ready endpoints per model": {MODEL}, "Model load time": {MODEL}}
    # rate() needs two samples of a series: wait (bounded) for the scrapes after the traffic.
    for title, wanted in expected.items():
        _eventually(prom, lambda t=title: models(t), wanted, f"panel {title!r}")
    _eventually(prom, lambda: models("Time to first token (p50, p95)", 1), {MODEL}, "TTFT p95")
    assert all(value > 0 for _, value in _present(prom, exprs["Generated tokens/s"][0]))
    _eventually(prom, lambda: prom.query(exprs["Ready endpoints per model"][0]), [({"model": MODEL}, 1.0)], "ready endpoints")
    _eventually(prom, lambda: [labels["status"] for labels, _ in prom.query(exprs["Errors/s"][0])], ["404"], "error statuses")
    for labels, value in _present(prom, exprs["Time to first token (p50, p95)"][1]):
        assert FIRST_TOKEN_DELAY / 2 <= value <= 1.0, (labels, value)

    # The operator row: reconciles by result, their duration, LLMServers by phase.
    # Every result has a series from the start (zeros included); the waiting server keeps retrying.
    def results() -> tuple[set[str], bool]:
        rates = {labels["result"]: value for labels, value in prom.query(exprs["Operator reconciles/s by result"][0])}
        return set(rates), rates.get("retry", 0) > 0

    _eventually(prom, results, ({"success", "retry", "conflict", "error"}, True), "the reconcile results panel")
    _present(prom, exprs["Operator reconcile duration (p50, p95)"][1])
    _eventually(prom, lambda: {labels["phase"]: value for labels, value in prom.query(exprs["LLMServers by phase"][0])
                               if value}, {"Ready": 1.0, "Pending": 1.0}, "the phase panel")


@pytest.mark.parametrize("target", ["runtime", "gateway", "operator"])
def test_metrics_pass_promtool(world: World, target: str) -> None:
    url = {"runtime": world.runtime.url, "gateway": world.gateway.url, "operator": world.operator_url}[target]
    status, text = runtime_server.get(url + "/metrics")
    assert status == 200 and "llmserver_" in text
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr
    expected_prefix = {"runtime": "llmserver_", "gateway": "llmserver_gateway_", "operator": "llmserver_operator_"}[target]
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names and all(name.startswith(expected_prefix) for name in names), names
