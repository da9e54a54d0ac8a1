"""Status of refused Proxy servers (ProxyNotAllowed, SecretNotOptedIn) and of a server whose model
name an older LLMServer already serves (ModelNameConflict); the claims registry behind the latter."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pytest
from llmserver_operator import model_claims, settings, status

NOW = "2026-01-01T00:00:00Z"
ENDPOINT = "http://gw.ns.svc/v1"


def _proxy(**proxy: Any) -> llmserver_api.LLMServerSpec:
    return llmserver_api.LLMServerSpec.model_validate(
        {"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://api.example.com/v1", **proxy}})


def _compute(observed: status.Observed, spec: llmserver_api.LLMServerSpec) -> dict[str, Any]:
    return status.compute(spec=spec, generation=1, previous=None, observed=observed, endpoint=ENDPOINT, now=NOW)


def _condition(result: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in result["conditions"] if c["type"] == kind)


def test_a_refused_proxy_url_is_failed_with_proxy_not_allowed() -> None:
    why = settings.Settings().proxy_policy().check_url("http://169.254.169.254/latest")
    result = _compute(status.Observed(proxy_refused=why), _proxy(url="http://169.254.169.254/latest"))
    ready = _condition(result, "Ready")
    assert (result["phase"], ready["status"], ready["reason"]) == ("Failed", "False", "ProxyNotAllowed")
    assert "link-local" in ready["message"] and "proxy.allowedHosts" in ready["message"]
    assert result["endpoint"] is None


def test_a_proxy_secret_not_opted_in_waits_with_secret_not_opted_in() -> None:
    spec = _proxy(apiKeySecretRef={"name": "prov", "key": "token"})
    found = {"prov": frozenset({"token"})}
    result = _compute(status.Observed(secrets=found, proxy_secret_opted_in=False), spec)
    ready = _condition(result, "Ready")
    assert (result["phase"], ready["reason"]) == ("Pending", "SecretNotOptedIn")
    assert "serving.llmserver.dev/proxy-key=true" in ready["message"]
    assert _compute(status.Observed(secrets={}, proxy_secret_opted_in=False), spec)["conditions"][1]["reason"] == \
        "SecretNotFound"  # a missing Secret is reported as missing first
    assert _compute(status.Observed(secrets=found), spec)["phase"] == "Ready"


def test_the_newer_server_of_a_model_name_is_degraded_and_unpublished() -> None:
    spec = _proxy()
    result = _compute(status.Observed(model_conflict="other/first"), spec)
    degraded = _condition(result, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ModelNameConflict")
    assert "other/first" in degraded["message"] and "'gpt'" in degraded["message"]
    assert result["endpoint"] is None and "other/first" in result["message"]
    assert _compute(status.Observed(), spec)["endpoint"] == ENDPOINT


def test_claims_pick_the_oldest_then_namespace_and_name() -> None:
    claims = model_claims.ModelClaims()
    assert claims.record("b", "x", "m", "2026-01-02T00:00:00Z") == set()
    assert claims.record("a", "y", "m", "2026-01-03T00:00:00Z") == {("b", "x")}
    assert claims.winner("a", "y", "m", "2026-01-03T00:00:00Z") == model_claims.Claim("2026-01-02T00:00:00Z", "b", "x")
    assert claims.winner("b", "x", "m", "2026-01-02T00:00:00Z") is None
    assert claims.record("a", "z", "m", "2026-01-02T00:00:00Z") == {("b", "x"), ("a", "y")}
    assert claims.winner("b", "x", "m", "2026-01-02T00:00:00Z") == model_claims.Claim("2026-01-02T00:00:00Z", "a", "z")
    assert claims.record("a", "z", "m", "2026-01-02T00:00:00Z") == set()  # unchanged claim: nobody to re-check


def test_a_renamed_or_deleted_claim_re_checks_both_names() -> None:
    claims = model_claims.ModelClaims()
    claims.record("ns", "old", "m", "1")
    claims.record("ns", "new", "m", "2")
    claims.record("ns", "n2", "n", "3")
    assert claims.record("ns", "old", "n", "1") == {("ns", "new"), ("ns", "n2")}
    assert claims.winner("ns", "new", "m", "2") is None
    assert claims.record("ns", "old", None, "1") == {("ns", "n2")}
    assert claims.winner("ns", "n2", "n", "3") is None


@pytest.mark.parametrize("bad", ["http://x", "a b"])
def test_operator_settings_refuse_a_bad_allowed_host(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_PROXY_ALLOWED_HOSTS", f"ok.example,{bad}")
    with pytest.raises(ValueError):
        settings.Settings()


def test_operator_settings_read_comma_separated_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_PROXY_ALLOWED_HOSTS", "ollama, 10.0.0.0/8")
    monkeypatch.setenv("LLMSERVER_OPERATOR_PROXY_CLUSTER_CIDRS", "34.0.0.0/8")
    policy = settings.Settings().proxy_policy()
    assert policy.check_url("http://ollama:11434/v1") is None and policy.check_url("http://10.1.1.1/v1") is None
    assert "cluster" in (policy.check_url("http://34.1.1.1/v1") or "")
