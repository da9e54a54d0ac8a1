"""spec.adapters with the real operator against the API emulator and the kubelet simulator: one
download Job per adapter with progress in status.adapters (reported by the real downloader's
reporter), a failed adapter shown with an Event while the model keeps serving, restart engines
rolled with `--adapter` once downloaded, and live engines loaded on their replicas (an aiohttp
stand-in of the runtime behind the Service's EndpointSlice) without touching the pod template."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import kubernetes.config.kube_config
import llmserver_api
import pytest
from llmserver_operator.builders import adapters
from llmserver_runtime.download import report
from testkit import fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
OURS = "app.kubernetes.io/managed-by=llmserver-operator"
SQL = {"name": "sql", "source": {"huggingFace": {"repo": "acme/sql-lora"}}}
POEM = {"name": "poem", "source": {"huggingFace": {"repo": "acme/poem-lora"}}}


def spec(model: str, backend: str = "llama-cpp", adapter_list: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"model": model, "backend": backend, "source": {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}},
            "adapters": adapter_list or [], **extra}


def job_of(name: str, ns: str, body: dict[str, Any], adapter: dict[str, Any]) -> str:
    server = llmserver_api.LLMServer.model_validate({"metadata": {"name": name, "namespace": ns}, "spec": body})
    return adapters.job_name(server, llmserver_api.llmserver.Adapter.model_validate(adapter))


def entry(cluster: Cluster, name: str, ns: str, adapter: str) -> dict[str, Any]:
    return next((e for e in cluster.status(name, ns).get("adapters") or [] if e["name"] == adapter), {})


def wait_entry(cluster: Cluster, name: str, ns: str, adapter: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    try:
        return cluster.kube.wait_for(lambda: (e := entry(cluster, name, ns, adapter)).get("phase") == phase and e,
                                     timeout)
    except TimeoutError:
        raise TimeoutError(f"adapter {adapter} not {phase}: {cluster.status(name, ns).get('adapters')}") from None


def runtime_args(cluster: Cluster, name: str, ns: str) -> list[str]:
    deployment = cluster.kube.get("apps/v1", "Deployment", name, ns)
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str, str]]:
    return [(e.get("type"), e.get("reason"), e.get("message")) for e in cluster.kube.list("v1", "Event", ns)
            if (e.get("involvedObject") or {}).get("name") == name]


def test_restart_engine_downloads_each_adapter_and_rolls_with_the_ready_ones(
        cluster: Cluster, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = cluster.kubelet
    assert sim is not None
    body = spec("restart", adapter_list=[SQL, POEM])
    sql_job, poem_job = job_of("restart", ns, body, SQL), job_of("restart", ns, body, POEM)
    sim.set_job_outcome("hold", name_prefix=sql_job)
    sim.set_job_outcome("fail", "download failed: sha256 mismatch for adapter_model.safetensors", name_prefix=poem_job)
    cluster.apply_server("restart", ns, **body)
    cluster.wait_phase("restart", "Ready", ns)
    jobs = sorted(j["metadata"]["name"] for j in cluster.kube.list("batch/v1", "Job", ns, labels=OURS))
    assert sorted([sql_job, poem_job]) == [j for j in jobs if "-adapter-" in j]

    # the downloader's own reporter writes progress into the adapter's entry; the operator keeps it
    wait_entry(cluster, "restart", ns, "sql", "Downloading")
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", cluster.kube.kubeconfig)
    reporter = report.StatusReporter(ns, "restart", adapter="sql")
    reporter.patch({"status": {"download": {"bytesDone": 256, "bytesTotal": 1024, "filesDone": 0,
                                            "message": "downloading"}}})
    cluster.kube.wait_for(lambda: (entry(cluster, "restart", ns, "sql").get("download") or {}).get("bytesDone") == 256,
                          10)
    reporter.patch({"status": {"download": {"message": "verifying"}}})  # merged into the entry's download
    cluster.kube.wait_for(lambda: entry(cluster, "restart", ns, "sql")["download"] == {
        "bytesDone": 256, "bytesTotal": 1024, "filesDone": 0, "message": "verifying"}, 10)
    assert cluster.status("restart", ns).get("download", {}).get("bytesDone") != 256  # the model's is untouched

    # a failed adapter: its entry and a Warning, the base model keeps serving without it
    failed = wait_entry(cluster, "restart", ns, "poem", "Failed")
    assert "sha256 mismatch" in failed["message"]
    cluster.kube.wait_for(lambda: any(r == "AdapterFailed" and "poem" in m
                                      for _, r, m in events(cluster, ns, "restart")), 10)
    assert cluster.status("restart", ns)["phase"] == "Ready"
    assert "--adapter" not in runtime_args(cluster, "restart", ns)

    sim.finish_job(ns, sql_job, "succeed")
    ready = wait_entry(cluster, "restart", ns, "sql", "Ready")
    assert ready["readyReplicas"] == 1
    args = runtime_args(cluster, "restart", ns)
    assert args[args.index("--adapter") + 1] == "sql=/models/hf/acme/sql-lora/main" and args.count("--adapter") == 1
    strategy = cluster.kube.get("apps/v1", "Deployment", "restart", ns)["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}

    # removing the adapters removes their Jobs and the argv, and empties status.adapters
    cluster.apply_server("restart", ns, **spec("restart"))
    cluster.kube.wait_for(lambda: cluster.status("restart", ns).get("adapters") == [], 30)
    cluster.kube.wait_for(lambda: not [j for j in cluster.kube.list("batch/v1", "Job", ns, labels=OURS)
                                       if "-adapter-" in j["metadata"]["name"]], 30)
    assert "--adapter" not in runtime_args(cluster, "restart", ns)


def test_adapter_secret_missing_is_pending_with_its_field(cluster: Cluster, ns: str) -> None:
    token = {"tokenSecretRef": {"name": "hf", "key": "token"}}
    private = {"name": "private", "source": {"huggingFace": {"repo": "acme/p", **token}}}
    cluster.apply_server("secretive", ns, **spec("secretive", adapter_list=[private]))
    cluster.wait_phase("secretive", "Ready", ns)
    pending = wait_entry(cluster, "secretive", ns, "private", "Pending")
    assert "spec.adapters[private].source" in pending["message"] and "'hf'" in pending["message"]
    jobs = cluster.kube.list("batch/v1", "Job", ns, labels=OURS)
    assert not [j for j in jobs if "-adapter-" in j["metadata"]["name"]]
    # Secrets are not watched: the operator looks again by itself and the adapter gets its Job
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": ns},
                         "data": {"token": "aGZfeA=="}})
    assert wait_entry(cluster, "secretive", ns, "private", "Ready")["readyReplicas"] == 1


class StandIn:
    """A runtime replica's adapter endpoints (the real ones: runtime-image/llmserver_runtime/server)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.held: dict[str, str] = {}

    def app(self) -> aiohttp.web.Application:
        app = aiohttp.web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/load_lora_adapter", self.load)
        app.router.add_post("/v1/unload_lora_adapter", self.unload)
        return app

    async def models(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        data = [{"id": self.model}] + [{"id": f"{self.model}:{n}", "parent": self.model} for n in sorted(self.held)]
        return aiohttp.web.json_response({"object": "list", "data": data})

    async def load(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.json()
        self.held[body["lora_name"]] = body["lora_path"]
        return aiohttp.web.Response(text="ok")

    async def unload(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.held.pop((await request.json())["lora_name"], None)
        return aiohttp.web.Response(text="ok")


@pytest.fixture
def stand_in() -> Iterator[tuple[StandIn, int]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    replica = StandIn("live")
    runner = aiohttp.web.AppRunner(replica.app())

    async def start() -> int:
        await runner.setup()
        await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner.addresses[0][1]

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield replica, port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_live_engine_loads_adapters_on_replicas_without_a_rollout(cluster: Cluster, ns: str,
                                                                   stand_in: tuple[StandIn, int]) -> None:
    replica, port = stand_in
    sim = cluster.kubelet
    assert sim is not None
    sim.set_pod_mode("live", "pending", namespace=ns)  # the simulated pods never answer; the stand-in does
    cluster.kube.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": "live-standin", "namespace": ns,
                                      "labels": {"kubernetes.io/service-name": "live"}},
                         "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True},
                                        "targetRef": {"kind": "Pod", "name": "standin"}}]})
    cluster.apply_server("live", ns, **spec("live", "transformers"))
    cluster.kube.wait_for(lambda: cluster.kube.get("apps/v1", "Deployment", "live", ns), 30)
    template = cluster.kube.get("apps/v1", "Deployment", "live", ns)["spec"]["template"]

    cluster.apply_server("live", ns, **spec("live", "transformers", adapter_list=[SQL, POEM]))
    assert wait_entry(cluster, "live", ns, "sql", "Ready")["readyReplicas"] == 1
    wait_entry(cluster, "live", ns, "poem", "Ready")
    assert replica.held == {"sql": "/models/hf/acme/sql-lora/main", "poem": "/models/hf/acme/poem-lora/main"}
    assert cluster.kube.get("apps/v1", "Deployment", "live", ns)["spec"]["template"] == template

    cluster.apply_server("live", ns, **spec("live", "transformers", adapter_list=[SQL]))
    cluster.kube.wait_for(lambda: [e["name"] for e in cluster.status("live", ns).get("adapters") or []] == ["sql"], 30)
    assert set(replica.held) == {"sql"}
    assert cluster.kube.get("apps/v1", "Deployment", "live", ns)["spec"]["template"] == template

    # a replica that lost its adapters (a restart) gets them back
    replica.held.clear()
    cluster.apply_server("live", ns, **spec("live", "transformers", adapter_list=[SQL], trustRemoteCode=False))
    cluster.kube.wait_for(lambda: "sql" in replica.held, 30)
