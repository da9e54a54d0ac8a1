"""`gateway --kubernetes` routing LoRA adapters (issue 21) against the API emulator.

An LLMServer with spec.adapters gets a model `<model>:<adapter>` per adapter; requests for it go
only to the replicas whose own /v1/models lists it (learned by probing), follow the adapter as it
is loaded on more replicas or unloaded, and an unknown adapter is a 404 model_not_found. The
replicas are small aiohttp runtimes in this process whose adapter list the test changes.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time

import openai
import pytest
from aiohttp import web

from testkit import emulator

pytestmark = pytest.mark.timeout(120)

NS = "ml"
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
LORA = {"huggingFace": {"repo": "acme/tiny-lora"}}
MESSAGES = [{"role": "user", "content": "hi"}]


class Replica:
    """A runtime serving `base` plus the adapters in `adapters`; answers name replica and model."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base
        self.adapters: set[str] = set()
        self.seen: collections.Counter[str] = collections.Counter()  # requests answered, per model
        self.asked: collections.Counter[str] = collections.Counter()  # requests received, 404s included
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()
        self.loop.run_forever()

    def served(self) -> list[str]:
        return [self.base, *sorted(f"{self.base}:{a}" for a in self.adapters)]

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": i, "object": "model", "created": 0, "owned_by": "llmserver"} for i in self.served()]})

    async def _chat(self, request: web.Request) -> web.Response:
        model = (await request.json())["model"]
        self.asked[model] += 1
        if model not in self.served():
            return web.json_response({"error": {"message": f"no {model}", "type": "invalid_request_error",
                                                "param": "model", "code": "model_not_found"}}, status=404)
        self.seen[model] += 1
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.name}}]})

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _until(check, timeout: float = 10.0, what: str = "") -> None:
    """Polls `check`; a 503 (the adapter on no replica yet) or a replica's 404 (unloaded there, and
    the gateway has not probed it since: at most one probe interval) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (openai.InternalServerError, openai.NotFoundError):
            pass
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(run_gateway):
    replicas = [Replica("R1", "tiny"), Replica("R2", "tiny"), Replica("R3", "auto")]
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        kube.create({"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
                     "metadata": {"name": "tiny", "namespace": NS}, "spec": {
                         "model": "tiny", "source": SOURCE, "replicas": 2,
                         "adapters": [{"name": "sql", "source": LORA}, {"name": "poet", "source": LORA}]}})
        kube.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "tiny-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "tiny"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": r.port} for r in replicas[:1]],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        kube.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "tiny-2", "namespace": NS, "labels": {"kubernetes.io/service-name": "tiny"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": replicas[1].port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        # A server that holds requests while cold, adapters included (replica R3).
        kube.create({"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
                     "metadata": {"name": "auto", "namespace": NS}, "spec": {
                         "model": "auto", "source": SOURCE, "autoscaling": {"maxReplicas": 1, "holdSeconds": 30},
                         "adapters": [{"name": "sql", "source": LORA}]}})
        kube.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "auto-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "auto"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": replicas[2].port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        gateway = run_gateway("--kubernetes", "--namespace", NS, ready="/ready", env={
            "KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_ADAPTER_PROBE_SECONDS": "0.2"})
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        _until(lambda: len({m.id for m in client.models.list()}) == 5, what="discovery")
        yield replicas[:2], client, kube, replicas[2]
        client.close()
    for replica in replicas:
        replica.close()


def _asked(client: openai.OpenAI, replicas: list[Replica], model: str, n: int = 8) -> set[str]:
    """The replicas the gateway sent `n` requests for `model` to (404s it retried elsewhere included)."""
    before = {r.name: r.asked[model] for r in replicas}
    _answers(client, model, n)
    return {r.name for r in replicas if r.asked[model] > before[r.name]}


def _answers(client: openai.OpenAI, model: str, n: int = 8) -> set[str]:
    return {client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content
            for _ in range(n)}


def test_an_adapter_goes_only_to_the_replicas_that_hold_it(cluster) -> None:
    (r1, r2), client, _, _ = cluster
    r1.adapters, r2.adapters = {"sql"}, set()
    assert sorted(m.id for m in client.models.list()) == ["auto", "auto:sql", "tiny", "tiny:poet", "tiny:sql"]
    _until(lambda: _asked(client, [r1, r2], "tiny:sql", 4) == {"R1"}, what="the probe to find sql on R1 only")
    assert _asked(client, [r1, r2], "tiny:sql") == {"R1"}  # R2, which does not hold it, is not even asked
    assert _answers(client, "tiny:sql") == {"R1"}
    assert _answers(client, "tiny") == {"R1", "R2"}  # the base model still uses both


def test_the_route_follows_adapters_loaded_and_unloaded(cluster) -> None:
    (r1, r2), client, _, _ = cluster
    r1.adapters, r2.adapters = {"poet"}, set()
    _until(lambda: _asked(client, [r1, r2], "tiny:poet", 4) == {"R1"}, what="poet on R1 only")
    r2.adapters = {"poet"}
    _until(lambda: _answers(client, "tiny:poet") == {"R1", "R2"}, what="poet loaded on R2 too")
    r1.adapters = set()
    _until(lambda: _asked(client, [r1, r2], "tiny:poet", 4) == {"R2"}, what="poet unloaded from R1")


def test_an_adapter_no_replica_holds_is_503_and_an_unknown_one_404(cluster) -> None:
    (r1, r2), client, _, _ = cluster
    r1.adapters, r2.adapters = set(), set()
    time.sleep(0.6)  # a few probe rounds
    with pytest.raises(openai.APIStatusError) as cold:
        client.chat.completions.create(model="tiny:sql", messages=MESSAGES)
    assert cold.value.status_code == 503
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="tiny:nope", messages=MESSAGES)
    assert unknown.value.body["code"] == "model_not_found" and unknown.value.body["param"] == "model"


def test_a_replica_that_unloaded_the_adapter_since_the_last_probe_is_skipped(cluster, run_gateway) -> None:
    (r1, r2), _, kube, _ = cluster
    r1.adapters, r2.adapters = {"sql"}, {"sql"}
    slow = run_gateway("--kubernetes", "--namespace", NS, ready="/ready", env={
        "KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_ADAPTER_PROBE_SECONDS": "600"})
    client = openai.OpenAI(base_url=slow.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    _until(lambda: _answers(client, "tiny:sql") == {"R1", "R2"}, what="sql on both replicas")
    r1.adapters = set()  # unloaded; this gateway asks again only in 10 minutes
    before, refused = r2.seen["tiny:sql"], r1.asked["tiny:sql"]
    assert _answers(client, "tiny:sql", 10) == {"R2"}  # R1's 404 is retried on R2, never seen by the client
    assert r2.seen["tiny:sql"] - before == 10
    assert r1.asked["tiny:sql"] > refused  # R1 was asked (and answered 404) for some of them
    client.close()


def test_a_request_held_for_an_adapter_is_answered_soon_after_a_replica_loads_it(cluster, run_gateway) -> None:
    _, _, kube, r3 = cluster
    r3.adapters = set()
    slow = run_gateway("--kubernetes", "--namespace", NS, ready="/ready", env={
        "KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_ADAPTER_PROBE_SECONDS": "600"})
    client = openai.OpenAI(base_url=slow.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    _until(lambda: "auto:sql" in {m.id for m in client.models.list()}, what="discovery")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply = pool.submit(client.chat.completions.create, model="auto:sql", messages=MESSAGES)
        time.sleep(1)
        assert not reply.done()  # held: R3 does not hold sql yet
        loaded_at = time.perf_counter()
        r3.adapters = {"sql"}  # the operator loads it; this gateway's own round is 10 minutes away
        assert reply.result(10).choices[0].message.content == "R3"
        print(f"\nheld adapter request answered {time.perf_counter() - loaded_at:.2f} s after the replica loaded it")
    client.close()
