"""The serving half of an adapter pass with stand-ins for the API and the replicas: restart engines
count ready pods started with `--adapter` (never the engine's own extraArgs), live engines ask for
another pass with a doubling delay while a replica lags and stop once all hold their adapters."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pytest
from llmserver_operator import adapter_pass, adapter_status, adapters
from llmserver_operator import settings as settings_mod

pytestmark = pytest.mark.timeout(60)

DONE = adapter_status.Seen(job={"status": {"succeeded": 1}}, downloaded=True)


def server(backend: str, **extra: Any) -> llmserver_api.LLMServer:
    spec = {"model": "tiny", "backend": backend, "source": {"huggingFace": {"repo": "acme/tiny"}},
            "adapters": [{"name": "sql", "source": {"huggingFace": {"repo": "acme/sql"}}}], **extra}
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "tiny", "namespace": "team"}, "spec": spec})


def pod(name: str, args: list[str], ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"args": args}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class Listing:
    """What the pass reads: pods (from the watch cache) and EndpointSlices (from the API)."""

    def __init__(self, pods: list[dict[str, Any]] | None = None, slices: list[dict[str, Any]] | None = None) -> None:
        self.pods, self.slices = pods or [], slices or []

    def list(self, kind: str, namespace: str, labels: Any) -> list[dict[str, Any]]:
        return self.pods if kind == "Pod" else self.slices


class Host:
    def __init__(self, listing: Listing) -> None:
        self.kube = self.children = listing
        self.settings = settings_mod.Settings(retry_delay_seconds=30)


class Sync:
    """The replicas: each call answers with the next result."""

    def __init__(self, *results: adapters.Result) -> None:
        self.results = list(results)

    def sync(self, model: str, wanted: Any, replicas: Any, load: bool = True) -> adapters.Result:
        return self.results.pop(0)


def test_restart_engines_count_ready_pods_started_with_the_adapter() -> None:
    started = ["serve", "--adapter", "sql=/models/hf/acme/sql/main"]
    pods = [pod("a", started), pod("b", started, ready=False), pod("c", ["serve", "--", "--adapter", "sql=x"])]
    passing = adapter_pass.AdapterPass(Host(Listing(pods=pods)), sync=Sync())  # type: ignore[arg-type]
    served = passing.served(server("llama-cpp"), {"sql": DONE}, {"status": {"readyReplicas": 2}}, {})
    assert served.entries is not None and served.entries[0]["readyReplicas"] == 1
    assert served.retry_after is None


def test_live_engines_look_again_with_a_doubling_delay_until_every_replica_holds_them() -> None:
    behind = adapters.Result(held={"sql": 1}, replicas=1)
    done = adapters.Result(held={"sql": 2}, replicas=2)
    slices = [{"ports": [{"name": "http", "port": 8080}], "endpoints": []}]
    replicas = Sync(behind, behind, behind, done)
    passing = adapter_pass.AdapterPass(Host(Listing(slices=slices)), sync=replicas)  # type: ignore[arg-type]
    deployment = {"status": {"readyReplicas": 2}}  # a second replica is ready before its endpoint is published
    delays = [passing.served(server("vllm"), {"sql": DONE}, deployment, {}).retry_after for _ in range(4)]
    assert delays == [1.0, 2.0, 4.0, None]


def test_a_refused_adapter_is_not_retried_in_a_loop() -> None:
    refused = adapters.Result(errors={"sql": "replica a refused to load it: HTTP 400: rank 64 > 16"}, replicas=1)
    passing = adapter_pass.AdapterPass(Host(Listing()), sync=Sync(refused))  # type: ignore[arg-type]
    served = passing.served(server("transformers"), {"sql": DONE}, {"status": {"readyReplicas": 1}}, {})
    assert served.entries is not None and served.entries[0]["phase"] == "Failed" and served.retry_after is None


def test_a_server_without_adapters_reads_nothing() -> None:
    class Untouchable:
        def list(self, *args: Any) -> list[dict[str, Any]]:
            raise AssertionError("no reads for a server without adapters")

    host = Host(Listing())
    host.kube = host.children = Untouchable()  # type: ignore[assignment]
    passing = adapter_pass.AdapterPass(host, sync=Sync())  # type: ignore[arg-type]
    assert passing.served(server("vllm", adapters=[]), {}, {"status": {}}, {}).entries is None
