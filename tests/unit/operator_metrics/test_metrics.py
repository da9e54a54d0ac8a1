"""llmserver_operator.metrics: names and types Prometheus accepts, bounded labels, counts that follow
what the reconciler reports, a registry per operator, and the /metrics server's lifecycle."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request

import prometheus_client
import prometheus_client.parser
import pydantic
import pytest
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import settings as settings_mod
from testkit import prometheus

pytestmark = pytest.mark.timeout(60)


def _samples(metrics: metrics_mod.OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, parsed back from the text exposition Prometheus would scrape."""
    text = metrics.exposition().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in prometheus_client.parser.text_string_to_metric_families(text) for sample in family.samples}


def _value(metrics: metrics_mod.OperatorMetrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, tuple(sorted(labels.items()))))


def _busy() -> metrics_mod.OperatorMetrics:
    metrics = metrics_mod.OperatorMetrics()
    metrics.reconciled("success", 0.02)
    metrics.reconciled("error", 1.5)
    metrics.api_request("get", "llmservers", 200, 0.003)
    metrics.api_request("get", "deployments", 404, 0.002)
    metrics.api_request("patch", "llmservers/status", 200, 0.004)
    metrics.api_request("create", "services", None, 0.5)
    metrics.server_status("ml", "a", "Ready", False)
    metrics.server_status("ml", "b", "Failed", True)
    metrics.apple_node("mac-1", True)
    return metrics


def test_exposition_passes_promtool() -> None:
    text = _busy().exposition().decode()
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr
    families = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")}
    assert all(name.startswith("llmserver_operator_") for name in families), families
    wanted = {"llmserver_operator_reconciles_total": "counter",
              "llmserver_operator_reconcile_duration_seconds": "histogram",
              "llmserver_operator_kube_requests_total": "counter",
              "llmserver_operator_kube_request_duration_seconds": "histogram",
              "llmserver_operator_llmservers": "gauge",
              "llmserver_operator_download_jobs_failed": "gauge",
              "llmserver_operator_apple_nodes": "gauge"}
    assert {name: families.get(name) for name in wanted} == wanted


def test_promtool_rejects_a_badly_named_metric() -> None:
    """The check above can fail: promtool lints names (a counter without _total)."""
    text = "# HELP llmserver_operator_things Things.\n# TYPE llmserver_operator_things counter\nllmserver_operator_things 1\n"
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and 'should have "_total" suffix' in result.stdout + result.stderr


def test_every_result_and_phase_is_exported_from_the_start() -> None:
    metrics = metrics_mod.OperatorMetrics()
    for result in ("success", "retry", "conflict", "error"):
        assert _value(metrics, "llmserver_operator_reconciles_total", result=result) == 0
    for phase in ("Pending", "Downloading", "Starting", "Ready", "Failed", "Unloaded"):
        assert _value(metrics, "llmserver_operator_llmservers", phase=phase) == 0
    assert _value(metrics, "llmserver_operator_download_jobs_failed") == 0
    assert _value(metrics, "llmserver_operator_apple_nodes", ready="true") == 0


def test_reconciles_are_counted_by_result_and_timed() -> None:
    metrics = metrics_mod.OperatorMetrics()
    for result, seconds in (("success", 0.01), ("success", 0.2), ("retry", 0.03), ("conflict", 0.04), ("error", 7.0)):
        metrics.reconciled(result, seconds)
    counts = {result: _value(metrics, "llmserver_operator_reconciles_total", result=result)
              for result in metrics_mod.RESULTS}
    assert counts == {"success": 2, "retry": 1, "conflict": 1, "error": 1}
    assert _value(metrics, "llmserver_operator_reconcile_duration_seconds_count") == 5
    assert _value(metrics, "llmserver_operator_reconcile_duration_seconds_sum") == pytest.approx(7.28)
    assert _value(metrics, "llmserver_operator_reconcile_duration_seconds_bucket", le="0.05") == 3
    assert _value(metrics, "llmserver_operator_reconcile_duration_seconds_bucket", le="5.0") == 4
    with pytest.raises(ValueError, match="unknown reconcile result 'ok'"):
        metrics.reconciled("ok", 0.1)  # an unbounded label value is refused


def test_api_requests_by_verb_resource_and_code() -> None:
    metrics = _busy()
    metrics.api_request("get", "llmservers", 200, 0.001)
    assert _value(metrics, "llmserver_operator_kube_requests_total", verb="get", resource="llmservers", code="200") == 2
    assert _value(metrics, "llmserver_operator_kube_requests_total", verb="get", resource="deployments", code="404") == 1
    assert _value(metrics, "llmserver_operator_kube_requests_total", verb="create", resource="services", code="error") == 1
    assert _value(metrics, "llmserver_operator_kube_request_duration_seconds_count",
                  verb="patch", resource="llmservers/status") == 1


def test_phase_counts_follow_each_server_and_forget_deleted_ones() -> None:
    metrics = metrics_mod.OperatorMetrics()
    metrics.server_status("ml", "a", "Downloading", False)
    metrics.server_status("ml", "b", "Downloading", False)
    metrics.server_status("other", "a", "Ready", False)  # same name, another namespace: another server
    assert _value(metrics, "llmserver_operator_llmservers", phase="Downloading") == 2
    assert _value(metrics, "llmserver_operator_llmservers", phase="Ready") == 1
    metrics.server_status("ml", "a", "Failed", True)  # a server moves: it counts once, in its new phase
    metrics.server_status("ml", "a", "Failed", True)
    assert _value(metrics, "llmserver_operator_llmservers", phase="Downloading") == 1
    assert _value(metrics, "llmserver_operator_llmservers", phase="Failed") == 1
    assert _value(metrics, "llmserver_operator_download_jobs_failed") == 1
    metrics.server_deleted("ml", "a")
    metrics.server_deleted("ml", "never-seen")  # harmless
    assert _value(metrics, "llmserver_operator_llmservers", phase="Failed") == 0
    assert _value(metrics, "llmserver_operator_download_jobs_failed") == 0
    assert sum(_value(metrics, "llmserver_operator_llmservers", phase=p) or 0 for p in metrics_mod.PHASES) == 2


def test_apple_nodes_by_readiness() -> None:
    metrics = metrics_mod.OperatorMetrics()
    metrics.apple_node("mac-1", True)
    metrics.apple_node("mac-2", True)
    metrics.apple_node("mac-2", False)
    assert (_value(metrics, "llmserver_operator_apple_nodes", ready="true"),
            _value(metrics, "llmserver_operator_apple_nodes", ready="false")) == (1, 1)
    metrics.apple_node("mac-2", None)
    assert _value(metrics, "llmserver_operator_apple_nodes", ready="false") == 0


def test_each_operator_has_its_own_registry() -> None:
    first, second = metrics_mod.OperatorMetrics(), metrics_mod.OperatorMetrics()
    first.reconciled("success", 0.1)
    first.server_status("ml", "a", "Ready", False)
    assert _value(second, "llmserver_operator_reconciles_total", result="success") == 0
    assert _value(second, "llmserver_operator_llmservers", phase="Ready") == 0
    assert b"llmserver_operator_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read().decode()


def test_serves_metrics_and_frees_the_port_on_close() -> None:
    metrics = _busy()
    port = metrics.serve("127.0.0.1", 0)
    try:
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'llmserver_operator_llmservers{phase="Failed"} 1.0' in text
        with pytest.raises(RuntimeError, match="already running"):
            metrics.serve("127.0.0.1", 0)
    finally:
        metrics.close()
    with pytest.raises(urllib.error.URLError):
        _get(f"http://127.0.0.1:{port}/metrics")
    again = metrics_mod.OperatorMetrics()  # a restarted operator binds the same port again
    assert again.serve("127.0.0.1", port) == port
    again.close()
    metrics.close()  # closing twice is harmless


def test_a_taken_port_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError):
            metrics_mod.OperatorMetrics().serve("127.0.0.1", sock.getsockname()[1])


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSERVER_OPERATOR_METRICS_PORT", raising=False)
    assert settings_mod.Settings().metrics_port == 0  # off unless configured (the chart turns it on)
    monkeypatch.setenv("LLMSERVER_OPERATOR_METRICS_PORT", "9102")
    monkeypatch.setenv("LLMSERVER_OPERATOR_METRICS_ADDRESS", "127.0.0.1")
    settings = settings_mod.Settings()
    assert (settings.metrics_port, settings.metrics_address) == (9102, "127.0.0.1")
    monkeypatch.setenv("LLMSERVER_OPERATOR_METRICS_PORT", "70000")
    with pytest.raises(pydantic.ValidationError, match="metrics_port"):
        settings_mod.Settings()
