"""From LLMServers, EndpointSlices and Secrets (raw API JSON) to routes and API keys."""

from __future__ import annotations

import base64

from llmserver_gateway import auth, kubeview, table


SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}


def _server(name: str, model: str, ns: str = "ml", created: str = "2026-01-01T00:00:00Z", **spec) -> dict:
    return {
        "apiVersion": "serving.llmserver.dev/v1alpha1",
        "kind": "LLMServer",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": {"model": model, **({} if spec.get("mode") == "Proxy" else {"source": SOURCE}), **spec},
    }


def _slice(service: str, endpoints: list[tuple[str, bool | None]], ns: str = "ml", port: int = 8080,
           name: str | None = None, address_type: str = "IPv4") -> dict:
    return {
        "metadata": {"name": name or f"{service}-abc", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": address_type,
        "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": port}],
        "endpoints": [
            {"addresses": [ip], **({"conditions": {"ready": ready}} if ready is not None else {})}
            for ip, ready in endpoints
        ],
    }


def _secret(name: str, data: dict[str, str], ns: str = "ml", labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": ns, **({"labels": labels} if labels else {})},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


OPTED_IN = {"serving.llmserver.dev/proxy-key": "true"}
MAC_SLICE_LABELS = {"app.kubernetes.io/managed-by": "llmserver-operator",
                    "endpointslice.kubernetes.io/managed-by": "llmserver-operator",
                    "serving.llmserver.dev/apple-node": "m1"}


def test_self_hosted_server_gets_its_slices_endpoints_with_readiness() -> None:
    view = kubeview.build(
        [_server("tiny", "tiny-chat", routing={"policy": "PrefixHash"})],
        [
            _slice("tiny", [("10.0.0.1", True), ("10.0.0.2", False)]),
            _slice("tiny", [("10.0.0.3", None)], name="tiny-xyz"),  # ready unset means ready
            _slice("other", [("10.9.9.9", True)]),
            _slice("tiny", [("10.7.7.7", True)], ns="elsewhere"),
        ],
        {},
    )
    assert view.problems == []
    (route,) = view.routes
    assert route.model == "tiny-chat"
    assert route.policy is table.Policy.PREFIX_HASH
    assert route.endpoints == (
        table.Endpoint("http://10.0.0.1:8080", True),
        table.Endpoint("http://10.0.0.2:8080", False),
        table.Endpoint("http://10.0.0.3:8080", True),
    )
    assert [e.url for e in route.ready_endpoints] == ["http://10.0.0.1:8080", "http://10.0.0.3:8080"]


def test_terminating_endpoints_take_no_requests_and_ipv6_gets_brackets() -> None:
    sl = _slice("s", [("fd00::1", True)], address_type="IPv6")
    sl["endpoints"].append({"addresses": ["fd00::2"], "conditions": {"ready": True, "terminating": True}})
    (route,) = kubeview.build([_server("s", "m")], [sl], {}).routes
    assert [(e.url, e.ready) for e in route.endpoints] == [
        ("http://[fd00::1]:8080", True), ("http://[fd00::2]:8080", False)]


def test_no_slices_yet_means_a_known_model_without_endpoints() -> None:
    (route,) = kubeview.build([_server("s", "m")], [], {}).routes
    assert route.endpoints == () and not route.available


def test_proxy_server_reads_its_key_from_the_secret() -> None:
    server = _server("gpt", "gpt-4o-mini", mode="Proxy", proxy={
        "url": "https://api.example.com/v1/", "upstreamModel": "gpt-4o-mini-2024",
        "apiKeySecretRef": {"name": "provider", "key": "token"}})
    missing = kubeview.build([server], [], {})
    assert missing.secrets_needed == {("ml", "provider")}
    assert not missing.routes[0].available
    assert "provider" in missing.problems[0] and "not found" in missing.problems[0]
    secret = _secret("provider", {"token": "sk-live-123"}, labels=OPTED_IN)
    view = kubeview.build([server], [], {("ml", "provider"): secret})
    (route,) = view.routes
    assert route.upstream == table.Upstream("https://api.example.com/v1", "gpt-4o-mini-2024", "sk-live-123", True)
    assert view.problems == []
    assert all("sk-live-123" not in p for p in missing.problems + view.problems)


def test_string_data_secrets_are_read_too() -> None:
    secret = {"metadata": {"name": "p", "namespace": "ml"}, "stringData": {"k": "plain"}}
    assert kubeview.secret_value(secret, "k") == "plain"
    assert kubeview.secret_value({"data": {"k": "!!notbase64"}}, "k") is None


def test_oldest_server_keeps_a_contested_model_name() -> None:
    view = kubeview.build(
        [_server("new", "m", created="2026-05-01T00:00:00Z"), _server("old", "m", created="2026-01-01T00:00:00Z")],
        [_slice("old", [("10.0.0.1", True)]), _slice("new", [("10.0.0.2", True)])],
        {},
    )
    (route,) = view.routes
    assert route.source == "ml/old"
    assert "ml/new" in view.problems[0]


def test_invalid_server_is_skipped_with_a_reason_naming_the_field() -> None:
    bad = _server("bad", "m", replicas=-1)
    view = kubeview.build([bad, _server("good", "g")], [], {})
    assert [r.model for r in view.routes] == ["g"]
    assert "ml/bad" in view.problems[0] and "replicas" in view.problems[0]


def test_api_keys_secret() -> None:
    text = "- key: sk-a\n  models: [tiny]\n  requestsPerMinute: 5\n- key: sk-b\n"
    keys, problem = kubeview.api_keys_from_secret(_secret("keys", {"apiKeys": text}), "ml/keys")
    assert problem is None
    assert keys == [auth.ApiKey("sk-a", frozenset({"tiny"}), 5), auth.ApiKey("sk-b")]
    keys, problem = kubeview.api_keys_from_secret(None, "ml/keys")
    assert keys is None and "ml/keys" in problem
    keys, problem = kubeview.api_keys_from_secret(_secret("k", {"apiKeys": "- key: sk-x\n  bad: ["}), "ml/k")
    assert keys is None and "sk-x" not in problem
    keys, problem = kubeview.api_keys_from_secret(_secret("k", {"apiKeys": "- models: [a]"}), "ml/k")
    assert keys is None and "[0]" in problem


def test_mac_slices_get_the_api_key_named_by_their_annotation() -> None:
    mac = _slice("tiny", [("192.168.1.20", True)], name="tiny-apple")
    mac["metadata"]["labels"].update(MAC_SLICE_LABELS)
    mac["metadata"]["annotations"] = {"serving.llmserver.dev/endpoint-api-key-secret": "agents/applenode-m1-key"}
    server = _server("tiny", "tiny-chat", apple={})
    trust = kubeview.Trust(agents_namespace="agents")
    missing = kubeview.build([server], [mac], {}, trust)
    assert missing.secrets_needed == {("agents", "applenode-m1-key")}
    assert missing.routes[0].endpoints == (table.Endpoint("http://192.168.1.20:8080", False),)
    assert "agents/applenode-m1-key" in missing.problems[0]
    secret = _secret("applenode-m1-key", {"api-key": "mac-secret-1"}, ns="agents")
    view = kubeview.build([server], [mac], {("agents", "applenode-m1-key"): secret}, trust)
    assert view.routes[0].endpoints == (table.Endpoint("http://192.168.1.20:8080", True, "mac-secret-1"),)
    assert view.problems == []
