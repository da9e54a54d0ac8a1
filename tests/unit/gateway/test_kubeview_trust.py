"""What the gateway accepts from tenant-written objects: Mac slice keys only on the operator's
slices naming their Mac's Secret in the agents' namespace; Proxy URLs through the host policy;
Proxy keys only from Secrets opted in with a label."""

from __future__ import annotations

import base64
import copy

import pytest

from llmserver_api import proxy_policy
from llmserver_gateway import kubeview

AGENTS = "llmserver-system"
KEY_REF = (AGENTS, "applenode-m1-key")
OPERATOR_LABELS = {"kubernetes.io/service-name": "tiny", "app.kubernetes.io/managed-by": "llmserver-operator",
                   "endpointslice.kubernetes.io/managed-by": "llmserver-operator",
                   "serving.llmserver.dev/apple-node": "m1"}


def _secret(name: str, ns: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _server(name: str, **spec) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"model": name, **spec}}


def _mac_slice(labels: dict[str, str], annotation: str) -> dict:
    return {"metadata": {"name": "tiny-apple", "namespace": "ml", "labels": labels,
                         "annotations": {kubeview.ENDPOINT_KEY_ANNOTATION: annotation}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["192.168.1.20"], "conditions": {"ready": True}}]}


SECRETS = {KEY_REF: _secret("applenode-m1-key", AGENTS, {"api-key": "mac-key"}),
           ("ml", "stolen"): _secret("stolen", "ml", {"api-key": "tenant-neighbour-key"}),
           ("other", "applenode-m1-key"): _secret("applenode-m1-key", "other", {"api-key": "other-key"})}
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}


def test_the_operators_mac_slice_gets_its_macs_key() -> None:
    view = kubeview.build([_server("tiny", source=SOURCE)], [_mac_slice(OPERATOR_LABELS, "/".join(KEY_REF))], SECRETS)
    assert view.routes[0].endpoints[0].api_key == "mac-key"
    assert view.secrets_needed == {KEY_REF}


def _without(label: str) -> dict[str, str]:
    return {k: v for k, v in OPERATOR_LABELS.items() if k != label}


@pytest.mark.parametrize(("labels", "annotation"), [
    ({"kubernetes.io/service-name": "tiny"}, "/".join(KEY_REF)),  # a tenant's slice
    (_without("app.kubernetes.io/managed-by"), "/".join(KEY_REF)),
    (_without("endpointslice.kubernetes.io/managed-by"), "/".join(KEY_REF)),
    (_without("serving.llmserver.dev/apple-node"), "/".join(KEY_REF)),
    ({**OPERATOR_LABELS, "serving.llmserver.dev/apple-node": "m2"}, "/".join(KEY_REF)),  # another Mac's key
    (OPERATOR_LABELS, "ml/stolen"),  # a Secret in the tenant's namespace
    (OPERATOR_LABELS, "other/applenode-m1-key"),  # the right name in another namespace
    (OPERATOR_LABELS, "applenode-m1-key"),  # no namespace: not the slice's either
], ids=["tenant", "no-managed-by", "no-slice-manager", "no-node", "other-node", "tenant-secret", "other-ns", "bare"])
def test_any_other_slice_gets_no_key_and_reads_no_secret(labels: dict[str, str], annotation: str) -> None:
    view = kubeview.build([_server("tiny", source=SOURCE)], [_mac_slice(labels, annotation)], SECRETS)
    (endpoint,) = view.routes[0].endpoints
    assert endpoint.api_key is None and endpoint.ready  # its endpoints are used, without a key
    assert view.secrets_needed == set()
    assert "ignored" in view.problems[0]


def _proxy(url: str, secret: str | None = "prov") -> dict:
    proxy = {"url": url, **({"apiKeySecretRef": {"name": secret, "key": "token"}} if secret else {})}
    return _server("gpt", mode="Proxy", proxy=proxy)


OPTED = {("ml", "prov"): _secret("prov", "ml", {"token": "sk-1"}, {proxy_policy.PROXY_KEY_LABEL: "true"})}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/v1", "http://169.254.169.254/latest", "http://10.0.0.5/v1", "http://[::1]/v1",
    "http://kubernetes.default.svc/api", "http://gateway/v1", "http://metadata.google.internal/v1",
    "https://api.example.com/v1?x=1", "https://api.example.com/v1#f", "http://2130706433/v1",
])
def test_a_refused_proxy_url_has_no_upstream_and_reads_no_secret(url: str) -> None:
    view = kubeview.build([_proxy(url)], [], OPTED)
    (route,) = view.routes
    assert route.upstream is None and not route.available
    assert view.secrets_needed == set()
    assert "Proxy host policy" in view.problems[0]


def test_listed_hosts_pass_and_the_upstream_is_guarded() -> None:
    trust = kubeview.Trust(proxy_hosts=proxy_policy.HostPolicy.parse(["127.0.0.0/8", "ollama"]))
    for url in ("http://127.0.0.1:8080/v1", "http://ollama:11434/v1"):
        (route,) = kubeview.build([_proxy(url)], [], OPTED, trust).routes
        assert route.upstream is not None and route.upstream.guarded and route.upstream.api_key == "sk-1"


def test_a_proxy_secret_must_be_opted_in() -> None:
    plain = copy.deepcopy(OPTED)
    plain[("ml", "prov")]["metadata"]["labels"] = {proxy_policy.PROXY_KEY_LABEL: "yes"}
    view = kubeview.build([_proxy("https://api.example.com/v1")], [], plain)
    assert view.routes[0].upstream is None
    assert proxy_policy.PROXY_KEY_LABEL in view.problems[0]
    assert "sk-1" not in view.problems[0]
    (route,) = kubeview.build([_proxy("https://api.example.com/v1")], [], OPTED).routes
    assert route.upstream is not None and route.upstream.api_key == "sk-1"
    (keyless,) = kubeview.build([_proxy("https://api.example.com/v1", secret=None)], [], {}).routes
    assert keyless.upstream is not None and keyless.upstream.api_key is None
