"""`gateway --kubernetes` against the API emulator: the routing table follows LLMServers,
EndpointSlices and Secrets as they change (ready/unready endpoints, deleted servers, rotated keys).

The cluster is shared by the module's tests; a test that changes it puts it back and waits until
the gateway shows the resting state again, so every test passes alone and in any order."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.request

import openai
import pytest
import yaml

from testkit import emulator, fake_upstreams

pytestmark = pytest.mark.timeout(180)

NS = "ml"
PROVIDER_KEY = "sk-provider-from-secret-5151"
GATEWAY_KEY = "sk-gateway-user-6161"
MAC_KEY = "mac-runtime-key-7171"
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
RESTING_MODELS = ["ext-model", "mac-model", "tiny-chat"]
SECRETS = (PROVIDER_KEY, GATEWAY_KEY, MAC_KEY, "sk-added-later", "sk-stale-key-0000")


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


def _stats(replica: fake_upstreams.Replica) -> dict:
    with urllib.request.urlopen(replica.url + "/fake/stats", timeout=5) as reply:
        return json.loads(reply.read())


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


@dataclasses.dataclass
class World:
    """The module's cluster and the gateway that discovers it.

    At rest: the LLMServers tiny (slices tiny-1 -> replica E1 and tiny-2 -> E2, both ready), ext
    (Proxy to `provider` with the `provider` Secret's key) and macsrv (a Mac slice, `mac`), and
    the gateway's keys Secret `gw-keys` holding GATEWAY_KEY only."""

    kube: emulator.KubeEmulator
    gateway: fake_upstreams.Proc
    client: openai.OpenAI
    replicas: dict[str, fake_upstreams.Replica]  # E1, E2 (behind tiny) and mac (behind macsrv)
    provider: fake_upstreams.Replica


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
    provider_secret = _secret("provider", {"token": PROVIDER_KEY})
    provider_secret["metadata"]["labels"] = {"serving.llmserver.dev/proxy-key": "true"}  # a Proxy may send it
    kube.create(provider_secret)
    kube.create(_server("tiny", "tiny-chat", source=SOURCE))
    kube.create(_proxy_server("ext", "ext-model", provider))
    for i, replica in enumerate(replicas.values(), 1):
        kube.create(_slice(f"tiny-{i}", "tiny", int(replica.url.rsplit(":", 1)[1]), ready=True))
    # A Mac: the operator's slice names the Secret (in the agents' namespace) with the runtime's key.
    kube.create({**_secret("applenode-m1-key", {"api-key": MAC_KEY}), "metadata": {
        "name": "applenode-m1-key", "namespace": "agents"}})
    kube.create(_server("macsrv", "mac-model", source=SOURCE))
    mac_slice = _slice("macsrv-apple", "macsrv", int(mac.url.rsplit(":", 1)[1]), ready=True)
    mac_slice["metadata"]["labels"].update({  # what the operator's Mac slice carries
        "app.kubernetes.io/managed-by": "llmserver-operator", "endpointslice.kubernetes.io/managed-by":
        "llmserver-operator", "serving.llmserver.dev/apple-node": "m1"})
    mac_slice["metadata"]["annotations"] = {
        "serving.llmserver.dev/endpoint-api-key-secret": "agents/applenode-m1-key"}
    kube.create(mac_slice)
    # A slice of a Service that is no LLMServer's, and one in another namespace: both ignored.
    kube.create({**_slice("other-1", "other", 1, True)})
    gateway = run_gateway(
        "--kubernetes", "--namespace", NS, "--api-keys-secret", "gw-keys", "--log-level", "debug",
        # A short resync: the tests run across several full relists, and the emulator's watch
        # handlers (which outlive a closed client until their timeout) end soon after the gateway.
        # The provider listens on loopback, which the Proxy host policy refuses unless listed.
        env={"KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_SECRET_REFRESH_SECONDS": "0.3",
             "LLMSERVER_GATEWAY_AGENTS_NAMESPACE": "agents", "LLMSERVER_GATEWAY_PROXY_ALLOWED_HOSTS": "127.0.0.1",
             "LLMSERVER_GATEWAY_RESYNC_SECONDS": "3"}, ready="/ready")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, timeout=30)
    world = World(kube=kube, gateway=gateway, client=client, replicas={**replicas, "mac": mac}, provider=provider)
    _until(lambda: _at_rest(world), timeout=30, message="gateway discovered the resting cluster")
    yield world
    client.close()


def _proxy_server(name: str, model: str, provider: fake_upstreams.Replica) -> dict:
    return _server(name, model, mode="Proxy", proxy={
        "url": provider.url + "/v1", "upstreamModel": "up-model",
        "apiKeySecretRef": {"name": "provider", "key": "token"}})


def _chat(client, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return reply.choices[0].message.content


def _models(client: openai.OpenAI) -> list[str]:
    return sorted(m.id for m in client.models.list())


def _at_rest(world: World) -> bool:
    """The gateway serves the resting cluster: all models listed, both tiny replicas in use, the
    provider reached with the right key."""
    tiny_replicas = {_chat(world.client, "tiny-chat").split("-")[0] for _ in range(6)}
    return (_models(world.client) == RESTING_MODELS and tiny_replicas == {"E1", "E2"}
            and _chat(world.client, "ext-model").startswith("prov-0"))


def _set_ready(kube: emulator.KubeEmulator, slice_name: str, ready: bool) -> None:
    kube.patch("discovery.k8s.io/v1", "EndpointSlice", slice_name,
               {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}]}, NS)


def _no_secret_logged(world: World) -> None:
    log = world.gateway.output()
    for secret in SECRETS:
        assert secret not in log


def test_discovered_models_answer(world: World) -> None:
    assert _models(world.client) == RESTING_MODELS
    assert _chat(world.client, "tiny-chat").split("-")[0] in ("E1", "E2")
    assert _chat(world.client, "ext-model") == "prov-0 prov-1 prov-2"


def test_mac_endpoint_gets_the_key_its_slice_names(world: World) -> None:
    before = _stats(world.replicas["mac"])
    assert _chat(world.client, "mac-model").startswith("mac-0")
    after = _stats(world.replicas["mac"])
    assert (after["auth_ok"] - before["auth_ok"], after["auth_bad"] - before["auth_bad"]) == (1, 0)
    _no_secret_logged(world)


def test_keys_come_from_the_secret(world: World) -> None:
    newcomer = openai.OpenAI(base_url=world.gateway.url + "/v1", api_key="sk-added-later", max_retries=0)

    def refused() -> bool:
        try:
            newcomer.models.list()
        except openai.AuthenticationError:
            return True
        return False

    assert refused()
    keys = yaml.safe_dump([{"key": GATEWAY_KEY}, {"key": "sk-added-later", "models": ["tiny-chat"]}])
    try:
        world.kube.patch("v1", "Secret", "gw-keys", {"data": {"apiKeys": _b64(keys)}}, NS)
        _until(lambda: [m.id for m in newcomer.models.list()] == ["tiny-chat"], message="new key accepted")
        _no_secret_logged(world)
    finally:
        world.kube.patch("v1", "Secret", "gw-keys",
                         {"data": {"apiKeys": _b64(yaml.safe_dump([{"key": GATEWAY_KEY}]))}}, NS)
        _until(refused, message="added key removed again")
        newcomer.close()


def test_endpoint_readiness_follows_the_slices(world: World) -> None:
    kube, client, e1 = world.kube, world.client, world.replicas["E1"]
    try:
        _set_ready(kube, "tiny-1", False)

        def only_e2() -> bool:
            before = _stats(e1)["requests"]
            only_e2_answers = all(_chat(client, "tiny-chat").startswith("E2") for _ in range(4))
            return only_e2_answers and _stats(e1)["requests"] == before

        _until(only_e2, message="unready E1 left out")
        _set_ready(kube, "tiny-2", False)

        def unavailable() -> bool:
            try:
                _chat(client, "tiny-chat")
            except openai.APIStatusError as exc:
                return exc.status_code == 503 and "no ready endpoint" in exc.message
            return False

        _until(unavailable, message="503 without ready endpoints")
        kube.delete("discovery.k8s.io/v1", "EndpointSlice", "tiny-2", NS)
        _set_ready(kube, "tiny-1", True)
        _until(lambda: _chat(client, "tiny-chat").startswith("E1"), message="E1 ready again")
    finally:
        _set_ready(kube, "tiny-1", True)
        if kube.get("discovery.k8s.io/v1", "EndpointSlice", "tiny-2", NS) is None:
            kube.create(_slice("tiny-2", "tiny", int(world.replicas["E2"].url.rsplit(":", 1)[1]), ready=True))
        _set_ready(kube, "tiny-2", True)
        _until(lambda: _at_rest(world), message="both tiny replicas back")


def test_rotated_provider_key_applies_without_restart(world: World) -> None:
    kube, client = world.kube, world.client

    def refused() -> bool:
        try:
            _chat(client, "ext-model")
        except openai.APIStatusError as exc:
            return exc.status_code == 502 and "sk-stale-key-0000" not in exc.response.text
        return False

    try:
        kube.patch("v1", "Secret", "provider", {"data": {"token": _b64("sk-stale-key-0000")}}, NS)
        _until(refused, message="stale key refused by the provider")
    finally:
        kube.patch("v1", "Secret", "provider", {"data": {"token": _b64(PROVIDER_KEY)}}, NS)
        _until(lambda: _chat(client, "ext-model").startswith("prov-0"), message="key restored")
    _no_secret_logged(world)


def test_deleted_llmserver_disappears(world: World) -> None:
    kube, client = world.kube, world.client
    kube.create(_proxy_server("doomed", "doomed-model", world.provider))
    try:
        _until(lambda: _chat(client, "doomed-model").startswith("prov-0"), message="new LLMServer served")
        kube.delete("serving.llmserver.dev/v1alpha1", "LLMServer", "doomed", NS)

        def gone() -> bool:
            try:
                _chat(client, "doomed-model")
            except openai.NotFoundError as exc:
                return exc.body["param"] == "model"
            return False

        _until(gone, message="404 after delete")
        assert _models(client) == RESTING_MODELS
    finally:
        if kube.get("serving.llmserver.dev/v1alpha1", "LLMServer", "doomed", NS) is not None:
            kube.delete("serving.llmserver.dev/v1alpha1", "LLMServer", "doomed", NS)
    _no_secret_logged(world)
