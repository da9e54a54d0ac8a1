"""`gateway --kubernetes` against the API emulator: the routing table follows LLMServers,
EndpointSlices and Secrets as they change (ready/unready endpoints, deleted servers, rotated keys)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import openai
import pytest
import yaml

from testkit import emulator

pytestmark = pytest.mark.timeout(180)

NS = "ml"
PROVIDER_KEY = "sk-provider-from-secret-5151"
GATEWAY_KEY = "sk-gateway-user-6161"
MAC_KEY = "mac-runtime-key-7171"
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "data": {k: _b64(v) for k, v in data.items()}}


def _slice(name: str, service: str, port: int, ready: bool) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }


def _server(name: str, model: str, **spec) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": NS}, "spec": {"model": model, **spec}}


def _requests(replica) -> int:
    with urllib.request.urlopen(replica.url + "/fake/stats", timeout=5) as reply:
        return json.loads(reply.read())["requests"]


def _until(check, timeout: float = 15.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except openai.APIError:
            pass
        assert time.monotonic() < deadline, f"not reached in time: {message}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def kube():
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


@pytest.fixture(scope="module")
def world(kube, start_fakes, run_gateway):
    replicas = start_fakes("E1", "E2")
    mac = start_fakes("mac", extra=("--api-key", MAC_KEY))["mac"]
    provider = start_fakes("prov", extra=("--require-key", PROVIDER_KEY, "--served-model", "up-model"))["prov"]
    kube.create(_secret("gw-keys", {"apiKeys": yaml.safe_dump([{"key": GATEWAY_KEY}])}))
    kube.create(_secret("provider", {"token": PROVIDER_KEY}))
    kube.create(_server("tiny", "tiny-chat", source=SOURCE))
    kube.create(_server("ext", "ext-model", mode="Proxy", proxy={
        "url": provider.url + "/v1", "upstreamModel": "up-model",
        "apiKeySecretRef": {"name": "provider", "key": "token"}}))
    for i, replica in enumerate(replicas.values(), 1):
        kube.create(_slice(f"tiny-{i}", "tiny", int(replica.url.rsplit(":", 1)[1]), ready=True))
    # A Mac: the operator's slice names the Secret (in the agents' namespace) with the runtime's key.
    kube.create({**_secret("applenode-m1-key", {"api-key": MAC_KEY}), "metadata": {
        "name": "applenode-m1-key", "namespace": "agents"}})
    kube.create(_server("macsrv", "mac-model", source=SOURCE))
    mac_slice = _slice("macsrv-apple", "macsrv", int(mac.url.rsplit(":", 1)[1]), ready=True)
    mac_slice["metadata"]["annotations"] = {
        "serving.llmserver.dev/endpoint-api-key-secret": "agents/applenode-m1-key"}
    kube.create(mac_slice)
    # A slice of a Service that is no LLMServer's, and one in another namespace: both ignored.
    kube.create({**_slice("other-1", "other", 1, True)})
    gateway = run_gateway(
        "--kubernetes", "--namespace", NS, "--api-keys-secret", "gw-keys", "--log-level", "debug",
        # A short resync: the tests run across several full relists, and the emulator's watch
        # handlers (which outlive a closed client until their timeout) end soon after the gateway.
        env={"KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_SECRET_REFRESH_SECONDS": "0.3",
             "LLMSERVER_GATEWAY_RESYNC_SECONDS": "3"}, ready="/ready")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=30)
    yield kube, gateway, client, {**replicas, "mac": mac}, provider
    client.close()


def _chat(client, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content


def test_discovered_models_answer(world) -> None:
    _, _, client, _, _ = world
    assert sorted(m.id for m in client.models.list()) == ["ext-model", "mac-model", "tiny-chat"]
    assert _chat(client, "tiny-chat").split("-")[0] in ("E1", "E2")
    assert _chat(client, "ext-model") == "prov-0 prov-1 prov-2"


def test_mac_endpoint_gets_the_key_its_slice_names(world) -> None:
    _, _, client, replicas, _ = world
    assert _chat(client, "mac-model").startswith("mac-0")
    with urllib.request.urlopen(replicas["mac"].url + "/fake/stats", timeout=5) as reply:
        stats = json.loads(reply.read())
    assert stats["auth_ok"] == 1 and stats["auth_bad"] == 0


def test_keys_come_from_the_secret(world) -> None:
    kube, gateway, _, _, _ = world
    newcomer = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-added-later", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        newcomer.models.list()
    keys = yaml.safe_dump([{"key": GATEWAY_KEY}, {"key": "sk-added-later", "models": ["tiny-chat"]}])
    kube.patch("v1", "Secret", "gw-keys", {"data": {"apiKeys": _b64(keys)}}, NS)
    _until(lambda: [m.id for m in newcomer.models.list()] == ["tiny-chat"], message="new key accepted")


def test_endpoint_readiness_follows_the_slices(world) -> None:
    kube, _, client, replicas, _ = world
    e1 = replicas["E1"]
    kube.patch("discovery.k8s.io/v1", "EndpointSlice", "tiny-1",
               {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": False}}]}, NS)

    def only_e2() -> bool:
        before = _requests(e1)
        return all(_chat(client, "tiny-chat").startswith("E2") for _ in range(4)) and _requests(e1) == before

    _until(only_e2, message="unready E1 left out")
    kube.patch("discovery.k8s.io/v1", "EndpointSlice", "tiny-2",
               {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": False}}]}, NS)

    def unavailable() -> bool:
        try:
            _chat(client, "tiny-chat")
        except openai.APIStatusError as exc:
            return exc.status_code == 503 and "no ready endpoint" in exc.message
        return False

    _until(unavailable, message="503 without ready endpoints")
    kube.delete("discovery.k8s.io/v1", "EndpointSlice", "tiny-2", NS)
    kube.patch("discovery.k8s.io/v1", "EndpointSlice", "tiny-1",
               {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}, NS)
    _until(lambda: _chat(client, "tiny-chat").startswith("E1"), message="E1 ready again")


def test_rotated_provider_key_applies_without_restart(world) -> None:
    kube, _, client, _, _ = world
    kube.patch("v1", "Secret", "provider", {"data": {"token": _b64("sk-stale-key-0000")}}, NS)

    def refused() -> bool:
        try:
            _chat(client, "ext-model")
        except openai.APIStatusError as exc:
            return exc.status_code == 502 and "sk-stale-key-0000" not in exc.response.text
        return False

    _until(refused, message="stale key refused by the provider")
    kube.patch("v1", "Secret", "provider", {"data": {"token": _b64(PROVIDER_KEY)}}, NS)
    _until(lambda: _chat(client, "ext-model").startswith("prov-0"), message="key restored")


def test_deleted_llmserver_disappears(world) -> None:
    kube, gateway, client, _, _ = world
    kube.delete("serving.llmserver.dev/v1alpha1", "LLMServer", "ext", NS)

    def gone() -> bool:
        try:
            _chat(client, "ext-model")
        except openai.NotFoundError as exc:
            return exc.body["param"] == "model"
        return False

    _until(gone, message="404 after delete")
    assert [m.id for m in client.models.list()] == ["mac-model", "tiny-chat"]
    log = gateway.output()
    for secret in (PROVIDER_KEY, GATEWAY_KEY, MAC_KEY, "sk-added-later", "sk-stale-key-0000"):
        assert secret not in log
