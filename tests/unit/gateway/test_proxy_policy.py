"""The Proxy host policy (llmserver_api.proxy_policy), shared by the operator and the gateway."""

from __future__ import annotations

import pytest

from llmserver_api import proxy_policy

POLICY = proxy_policy.HostPolicy.parse(["*.corp.example", "10.1.0.0/16", "ollama", "[fd00::7]"], ["34.0.0.0/8"])


@pytest.mark.parametrize("url", [
    "https://api.openai.com/v1", "http://api.example.com:8080/v1/", "http://8.8.8.8/v1",
    "http://x.corp.example/v1", "http://10.1.2.3/v1", "http://ollama:11434/v1", "http://[fd00::7]/v1",
])
def test_allowed(url: str) -> None:
    assert POLICY.check_url(url) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1/v1", "loopback"), ("http://127.0.0.9/v1", "loopback"), ("http://[::1]/v1", "loopback"),
    ("http://[::ffff:127.0.0.1]/v1", "loopback"), ("http://169.254.169.254/", "link-local"),
    ("http://[fe80::1]/", "link-local"), ("http://10.2.0.1/", "private"), ("http://192.168.1.1/", "private"),
    ("http://[fd00::8]/", "private"), ("http://100.64.0.1/", "private"), ("http://0.0.0.0/", "reserved"),
    ("http://34.1.2.3/", "cluster"), ("http://localhost/", "single-label"), ("http://db/", "single-label"),
    ("http://a.b.svc/", "cluster-internal"), ("http://a.b.svc.cluster.local/", "cluster-internal"),
    ("http://metadata.google.internal/", "cluster-internal"), ("http://x.localhost/", "cluster-internal"),
    ("http://127.1/", "non-canonical"), ("http://0x7f000001/", "non-canonical"),
    ("https://a.example/v1?k=v", "query"), ("https://a.example/v1#x", "query"), ("https://a.example/v1?", "query"),
    ("https://u:p@a.example/v1", "user"), ("ftp://a.example/", "http"), ("http://a.example\\@b/", "backslash"),
    ("http://a.example:99999/", "parsed"),
])
def test_refused(url: str, why: str) -> None:
    reason = POLICY.check_url(url)
    assert reason is not None and why in reason, reason


def test_listed_names_and_suffixes() -> None:
    assert POLICY.listed_name("OLLAMA.") and POLICY.listed_name("a.b.corp.example")
    assert not POLICY.listed_name("corp.example") and not POLICY.listed_name("evilcorp.example")


def test_bad_entries_are_refused() -> None:
    for entry in ("http://x", "*.", "a b"):
        with pytest.raises(ValueError):
            proxy_policy.HostPolicy.parse([entry])


def test_secret_opt_in_label() -> None:
    assert proxy_policy.secret_opted_in({"serving.llmserver.dev/proxy-key": "true"})
    assert not proxy_policy.secret_opted_in({"serving.llmserver.dev/proxy-key": "True"})
    assert not proxy_policy.secret_opted_in(None)
