"""Pure parts of the cluster commands: merge patches, unload/load patches, list rows."""

from __future__ import annotations

from llmserver_cli import cluster
from llmserver_cli.commands import list_loaded, scaling
from llmserver_cli.local import state


def test_merge_patch_deletes_what_the_new_spec_drops() -> None:
    old = {"backend": "llama-cpp", "llamaCpp": {"nGpuLayers": 1, "nCtx": 10}, "replicas": 1}
    new = {"backend": "vllm", "vllm": {"tensorParallelSize": 2}, "replicas": 1, "llamaCpp": {"nGpuLayers": 1}}
    assert cluster.merge_patch(old, new) == {"backend": "vllm", "vllm": {"tensorParallelSize": 2}, "llamaCpp": {"nCtx": None}}
    assert cluster.merge_patch(new, new) == {}


def test_unload_remembers_replicas_and_load_restores_them() -> None:
    obj = {"metadata": {"name": "a"}, "spec": {"replicas": 3}}
    patch = scaling.unload_patch(obj)
    assert patch == {"metadata": {"annotations": {scaling.ANNOTATION: "3"}}, "spec": {"replicas": 0}}
    unloaded = {"metadata": {"annotations": {scaling.ANNOTATION: "3"}}, "spec": {"replicas": 0}}
    assert scaling.unload_patch(unloaded) is None
    assert scaling.load_patch(unloaded) == {"metadata": {"annotations": {scaling.ANNOTATION: None}}, "spec": {"replicas": 3}}
    assert scaling.load_patch(obj) is None
    assert scaling.load_patch({"spec": {"replicas": 0}})["spec"]["replicas"] == 1  # type: ignore[index]
    assert scaling.load_patch({"metadata": {"annotations": {scaling.ANNOTATION: "junk"}}, "spec": {"replicas": 0}})["spec"]["replicas"] == 1  # type: ignore[index]


def test_cluster_row_shows_resolved_backend_and_ready_replicas() -> None:
    item = {
        "metadata": {"name": "qwen", "namespace": "ml"},
        "spec": {"model": "qwen", "mode": "SelfHosted", "backend": "auto", "replicas": 2},
        "status": {"phase": "Ready", "readyReplicas": 1, "endpoint": "http://gw/v1",
                   "resolved": {"backend": "llama-cpp", "capabilities": ["TextGeneration", "Embeddings"]}},
    }  # fmt: skip
    row = list_loaded.cluster_row(item)
    assert (row.namespace, row.name, row.backend, row.capabilities, row.phase, row.ready, row.endpoint) == (
        "ml", "qwen", "auto→llama-cpp", "TextGeneration,Embeddings", "Ready", "1/2", "http://gw/v1"
    )
    proxy = list_loaded.cluster_row({"metadata": {"name": "p"}, "spec": {"model": "gpt", "mode": "Proxy"}})
    assert (proxy.backend, proxy.phase, proxy.ready) == ("-", "Pending", "no")


def test_local_row_points_at_the_gateway() -> None:
    current = state.LocalState(pid=1, gateway_url="http://127.0.0.1:8000")
    server = state.ServerState(name="tiny", model="tiny", mode="SelfHosted", backend="llama-cpp", phase="Ready")
    row = list_loaded.local_row(current, server)
    assert (row.endpoint, row.ready, row.capabilities) == ("http://127.0.0.1:8000/v1", "1/1", "auto")
