"""Alerts, dashboard and kube-state-metrics config: valid PromQL (promtool), alerts that fire on the
right series (promtool test rules), and only metric names the runtime, gateway, operator or the
shipped kube-state-metrics config really export."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
from typing import Any

import prometheus_client
import pytest
import yaml

from llmserver_operator import metrics as operator_metrics
from llmserver_gateway import metrics as gateway_metrics
from llmserver_runtime.server import metrics as runtime_metrics
from testkit import helm

pytestmark = pytest.mark.timeout(120)

DASHBOARD = json.loads((helm.CHART / "monitoring" / "dashboard.json").read_text())
KSM = yaml.safe_load((helm.CHART / "monitoring" / "kube-state-metrics.yaml").read_text())
# Names PromQL uses that are not metrics.
PROMQL_WORDS = {"sum", "max", "min", "avg", "by", "on", "unless", "rate", "histogram_quantile", "le"}


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed: run `bash scripts/setup-tools.sh` (Debian package prometheus)"
    return found


def _series_names(registry: prometheus_client.CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def _known_metrics() -> set[str]:
    runtime = runtime_metrics.RuntimeMetrics("m", "fake")
    gateway = gateway_metrics.GatewayMetrics()
    operator = operator_metrics.OperatorMetrics()
    prefix = KSM["spec"]["resources"][0]["metricNamePrefix"]
    ksm = {f"{prefix}_{metric['name']}" for metric in KSM["spec"]["resources"][0]["metrics"]}
    return _series_names(runtime.registry) | _series_names(gateway.registry) | _series_names(operator.registry) | ksm


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # selectors
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    return {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
            if word not in PROMQL_WORDS and not word.startswith("$") and word.startswith(("llmserver_", "kube_"))}


def _rules(values: dict[str, Any] | None = None) -> dict[str, Any]:
    objects = helm.template(values or {"monitoring": {"prometheusRule": {"enabled": True}}})
    rule = helm.one(objects, "PrometheusRule", "-alerts")
    return {"groups": rule["spec"]["groups"]}


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]  # rows have none


def test_alert_rules_pass_promtool(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(_rules()))
    result = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_dashboard_queries_are_valid_promql(tmp_path: pathlib.Path) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$model", ".*")}
             for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_exported_metric_names_are_used() -> None:
    known = _known_metrics()
    used = set()
    for expr in _dashboard_exprs() + [rule["expr"] for rule in _rules()["groups"][0]["rules"]]:
        used |= _metric_names(expr)
    assert used, "no metric names found"
    assert sorted(used - known) == []
    # The dashboard covers what the issue asks for: tokens/s, TTFT, queue depth, errors, downloads.
    titles = " ".join(panel["title"] for panel in DASHBOARD["panels"]).lower()
    for topic in ("tokens/s", "time to first token", "queue depth", "errors", "download", "operator reconcile"):
        assert topic in titles, topic
    # The operator's panels sit in their own row, below every other panel.
    row = next(panel for panel in DASHBOARD["panels"] if panel["type"] == "row")
    assert row["title"] == "Operator"
    below = [panel for panel in DASHBOARD["panels"] if panel["gridPos"]["y"] > row["gridPos"]["y"]]
    assert below and all("llmserver_operator_" in target["expr"] for panel in below for target in panel["targets"])
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


def test_dashboard_config_map(rendered: dict[str, list[dict[str, Any]]]) -> None:
    config_map = helm.one(rendered["monitoring"], "ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["llmserver.json"]) == DASHBOARD
    assert not [o for o in rendered["default"] if o["kind"] == "ConfigMap"]  # off by default


ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'llmserver_gateway_ready_endpoints{model="down", pod="gw-1"}'
        values: '0x20'
      - series: 'llmserver_gateway_ready_endpoints{model="up", pod="gw-1"}'
        values: '2x20'
      - series: 'kube_llmserver_status_condition{namespace="ml", llmserver="bad", model="bad", type="Downloaded", reason="DownloadFailed"}'
        values: '0x20'
      - series: 'kube_llmserver_status_condition{namespace="ml", llmserver="good", model="good", type="Downloaded", reason="Downloaded"}'
        values: '1x20'
      - series: 'kube_llmserver_status_condition{namespace="ml", llmserver="bad", model="bad", type="Ready"}'
        values: '0x20'
      - series: 'kube_llmserver_status_condition{namespace="ml", llmserver="idle", model="idle", type="Ready"}'
        values: '0x20'
      - series: 'kube_llmserver_phase{namespace="ml", llmserver="idle", model="idle", phase="Unloaded"}'
        values: '1x20'
      - series: 'llmserver_gateway_requests_total{model="flaky", status="200"}'
        values: '0+60x20'
      - series: 'llmserver_gateway_requests_total{model="flaky", status="503"}'
        values: '0+30x20'
      - series: 'llmserver_gateway_requests_total{model="up", status="200"}'
        values: '0+60x20'
      - series: 'llmserver_operator_reconciles_total{namespace="ops", pod="op-1", result="success"}'
        values: '0+10x30'
      - series: 'llmserver_operator_reconciles_total{namespace="ops", pod="op-1", result="error"}'
        values: '0+5x30'
      - series: 'llmserver_operator_reconciles_total{namespace="calm", pod="op-2", result="success"}'
        values: '0+60x30'
      - series: 'llmserver_operator_reconciles_total{namespace="calm", pod="op-2", result="error"}'
        values: '0+1x30'
    alert_rule_test:
      - eval_time: 5m
        alertname: LLMServerModelUnavailable
        exp_alerts: []
      - eval_time: 11m
        alertname: LLMServerModelUnavailable
        exp_alerts:
          - exp_labels: {model: down, severity: critical}
            exp_annotations:
              summary: Model down has no ready endpoint
              description: "The gateway has had no ready endpoint for model down for 10m; requests for it get 503. Check `kubectl get llms -A` and the runtime pods."
      - eval_time: 2m
        alertname: LLMServerDownloadFailed
        exp_alerts:
          - exp_labels: {namespace: ml, llmserver: bad, model: bad, severity: warning}
            exp_annotations:
              summary: Model download failed for LLMServer ml/bad
              description: "The download Job of ml/bad (bad) failed after its retries; `kubectl describe llms -n ml bad` shows the reason."
      - eval_time: 11m
        alertname: LLMServerNotReady
        exp_alerts:
          - exp_labels: {namespace: ml, llmserver: bad, model: bad, severity: warning}
            exp_annotations:
              summary: LLMServer ml/bad is not Ready
              description: "ml/bad (bad) has not been Ready for 10m."
      - eval_time: 16m
        alertname: LLMServerGatewayErrors
        exp_alerts:
          - exp_labels: {model: flaky, severity: warning}
            exp_annotations:
              summary: Gateway answers 5xx for model flaky
              description: "33.33% of the gateway's answers for flaky were 5xx over the last 5 minutes."
      - eval_time: 10m
        alertname: LLMServerOperatorReconcileErrors
        exp_alerts: []
      - eval_time: 21m
        alertname: LLMServerOperatorReconcileErrors
        exp_alerts:
          - exp_labels: {namespace: ops, severity: warning}
            exp_annotations:
              summary: The llmserver operator in ops fails its reconciles
              description: "33.33% of the operator's reconciles failed over the last 5 minutes (Kubernetes API errors or a bug); LLMServers stop converging. See the operator's log and llmserver_operator_kube_requests_total by code."
"""


def test_alerts_fire_on_the_right_series(tmp_path: pathlib.Path) -> None:
    """promtool feeds synthetic series through the rendered alerts: each fires for the broken model
    only (an unloaded server and a healthy one stay quiet) and only after its `for` period; the
    operator alert fires for the operator failing a third of its reconciles, not for one failing 1.6%."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    result = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_thresholds_come_from_values() -> None:
    rules = _rules({"monitoring": {"prometheusRule": {"enabled": True, "unavailableFor": "3m", "errorRatio": 0.2,
                                                      "reconcileErrorRatio": 0.3, "reconcileErrorsFor": "7m"}}})
    by_name = {rule["alert"]: rule for rule in rules["groups"][0]["rules"]}
    assert by_name["LLMServerModelUnavailable"]["for"] == "3m"
    assert "> 0.2" in by_name["LLMServerGatewayErrors"]["expr"]
    assert "> 0.3" in by_name["LLMServerOperatorReconcileErrors"]["expr"]
    assert by_name["LLMServerOperatorReconcileErrors"]["for"] == "7m"


def test_kube_state_metrics_config_reads_real_status_fields(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Every status path the config reads exists in the LLMServer CRD's schema."""
    from llmserver_api import generate

    schema = generate.llmserver_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    resource = KSM["spec"]["resources"][0]
    assert resource["groupVersionKind"] == {"group": "serving.llmserver.dev", "version": "v1alpha1", "kind": "LLMServer"}

    def exists(path: list[str]) -> bool:
        node = schema
        for key in path:
            node = node.get("properties", {}).get(key) or (node.get("items") or {}).get("properties", {}).get(key)
            if node is None:
                return False
        return True

    paths = list(resource["labelsFromPath"].values())
    for metric in resource["metrics"]:
        each = metric["each"]
        spec = each[each["type"][0].lower() + each["type"][1:]]
        paths.append(spec["path"])
        paths += [spec["path"] + sub for sub in spec.get("labelsFromPath", {}).values()]
        if "valueFrom" in spec:
            paths.append(spec["path"] + spec["valueFrom"])
    for path in paths:
        if path[0] != "metadata":
            assert exists(path), f"{path} is not in the LLMServer schema"
    config_map = helm.one(helm.template({"monitoring": {"kubeStateMetrics": {"enabled": True}}}), "ConfigMap",
                          "-kube-state-metrics")
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == KSM
