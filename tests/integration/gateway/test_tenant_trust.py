"""`gateway --kubernetes` against the API emulator with tenant-written objects (issue 19 item 2):
a Proxy aimed at a loopback listener (real listeners on 127.0.0.x that record every request) never
receives a request or a key, a tenant-written EndpointSlice with the key annotation never gets the
Mac's key, and the positive controls (an allowed Proxy host, the operator's own Mac slice) do get
theirs, so each check can fail."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import socket
import time
import urllib.error
import urllib.request

import aiohttp
import aiohttp.abc
import pytest

from llmserver_api import proxy_policy
from llmserver_gateway import guard
from testkit import emulator

pytestmark = pytest.mark.timeout(120)

NS = "tenant"
AGENTS = "llmserver-system"
MAC_KEY = "mac-runtime-key-trust-9191"
PROXY_KEY = "sk-tenant-proxy-8181"
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}


def _secret(name: str, ns: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _server(name: str, **spec) -> dict:
    return {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
            "metadata": {"name": name, "namespace": NS}, "spec": {"model": name, **spec}}


def _proxy(name: str, url: str, secret: str) -> dict:
    return _server(name, mode="Proxy", proxy={"url": url, "apiKeySecretRef": {"name": secret, "key": "token"}})


def _slice(name: str, service: str, url: str, labels: dict[str, str], annotation: str) -> dict:
    host, port = url.removeprefix("http://").split(":")
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": service, **labels},
                         "annotations": {"serving.llmserver.dev/endpoint-api-key-secret": annotation}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": int(port), "protocol": "TCP"}],
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}]}


def _chat(gateway_url: str, model: str) -> tuple[int, dict]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(gateway_url + "/v1/chat/completions", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _seen(listener) -> str:
    """Everything a listener received, headers and bodies, as one text."""
    return json.dumps([{**r, "body": r["body"].decode(errors="replace")} for r in listener.requests])


@dataclasses.dataclass
class World:
    gateway_url: str
    victim: object  # 127.0.0.2: what a tenant Proxy aims at
    thief: object  # 127.0.0.3: a tenant's own endpoint behind a slice claiming the Mac's key
    allowed: object  # 127.0.0.4: listed in proxy.allowedHosts
    mac: object  # 127.0.0.5: the Mac runtime behind the operator's slice


@pytest.fixture(scope="module")
def world(listen, run_gateway):
    victim, thief = listen("ok", "127.0.0.2"), listen("ok", "127.0.0.3")
    allowed, mac = listen("ok", "127.0.0.4"), listen("ok", "127.0.0.5")
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        opted = {proxy_policy.PROXY_KEY_LABEL: "true"}
        kube.create(_secret("prov", NS, {"token": PROXY_KEY}, opted))
        kube.create(_secret("plain", NS, {"token": PROXY_KEY}))
        kube.create(_secret("applenode-m1-key", AGENTS, {"api-key": MAC_KEY}))
        kube.create(_proxy("loop", victim.url + "/v1", "prov"))  # loopback, opted-in key
        kube.create(_proxy("loopquery", allowed.url + "/v1?x=", "prov"))  # allowed host, but a query
        kube.create(_proxy("ok", allowed.url + "/v1", "prov"))  # positive control
        kube.create(_proxy("unlabelled", allowed.url + "/v1", "plain"))  # allowed host, Secret not opted in
        kube.create(_server("stolen", source=SOURCE))
        kube.create(_slice("stolen-x", "stolen", thief.url, {}, f"{AGENTS}/applenode-m1-key"))
        forged = {"app.kubernetes.io/managed-by": "llmserver-operator",
                  "endpointslice.kubernetes.io/managed-by": "llmserver-operator",
                  "serving.llmserver.dev/apple-node": "m2"}  # labels copied, but another Mac's name
        kube.create(_server("forged", source=SOURCE))
        kube.create(_slice("forged-apple", "forged", thief.url, forged, f"{AGENTS}/applenode-m1-key"))
        kube.create(_server("macsrv", source=SOURCE))
        kube.create(_slice("macsrv-apple", "macsrv", mac.url, {**forged, "serving.llmserver.dev/apple-node": "m1"},
                           f"{AGENTS}/applenode-m1-key"))
        gateway = run_gateway(
            "--kubernetes", "--namespace", NS, "--log-level", "debug",
            env={"KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_PROXY_ALLOWED_HOSTS": "127.0.0.4",
                 "LLMSERVER_GATEWAY_RESYNC_SECONDS": "3"}, ready="/ready")
        deadline = time.monotonic() + 30
        while _chat(gateway.url, "macsrv")[0] != 200:
            assert time.monotonic() < deadline, gateway.output()[-3000:]
            time.sleep(0.2)
        yield World(gateway.url, victim, thief, allowed, mac)


@pytest.mark.parametrize("model", ["loop", "loopquery", "unlabelled"])
def test_a_refused_proxy_never_sends_a_request_or_its_key(world: World, model: str) -> None:
    before = len(world.allowed.requests)
    status, reply = _chat(world.gateway_url, model)
    assert status >= 500, reply
    assert world.victim.requests == []
    assert len(world.allowed.requests) == before
    assert PROXY_KEY not in json.dumps(reply)


def test_an_allowed_proxy_gets_its_opted_in_key(world: World) -> None:
    status, _ = _chat(world.gateway_url, "ok")
    assert status == 200
    assert world.allowed.requests[-1]["headers"]["Authorization"] == f"Bearer {PROXY_KEY}"


@pytest.mark.parametrize("model", ["stolen", "forged"])
def test_a_tenant_written_slice_never_gets_the_macs_key(world: World, model: str) -> None:
    status, _ = _chat(world.gateway_url, model)
    assert status == 200  # its endpoint is used, as any slice's, but without a key
    assert "Authorization" not in world.thief.requests[-1]["headers"]
    assert MAC_KEY not in _seen(world.thief)


def test_the_operators_mac_slice_gets_the_macs_key(world: World) -> None:
    status, _ = _chat(world.gateway_url, "macsrv")
    assert status == 200
    assert world.mac.requests[-1]["headers"]["Authorization"] == f"Bearer {MAC_KEY}"


class _Rebinding(aiohttp.abc.AbstractResolver):
    """DNS that answers a name with a loopback address (what a rebinding server does on its second answer)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "control-listed"])
def test_a_name_resolving_to_loopback_is_never_connected_to(listen, allowed: bool) -> None:
    """The gateway's guarded client over a real socket: the name passes the literal check, its
    answer is loopback; the listener sees nothing unless the address is listed."""
    target = listen("ok", "127.0.0.6")
    port = int(target.url.rsplit(":", 1)[1])
    policy = proxy_policy.HostPolicy.parse(["127.0.0.6"] if allowed else [])
    url = f"http://provider.example.com:{port}/v1/chat/completions"
    assert policy.check_url(url) is None

    async def post() -> int:
        connector = aiohttp.TCPConnector(resolver=guard.GuardedResolver(policy, _Rebinding("127.0.0.6")))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(url, data=b"{}", allow_redirects=False) as reply:
                return reply.status

    if allowed:
        assert asyncio.run(post()) == 200
        assert len(target.requests) == 1
    else:
        with pytest.raises(aiohttp.ClientConnectorError) as raised:
            asyncio.run(post())
        assert guard.refusal(raised.value) is not None
        assert target.requests == []
