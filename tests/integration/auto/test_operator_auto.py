"""The real operator resolving `backend: auto` against the API emulator, with a Hub stand-in
(testkit.hub_server via HF_ENDPOINT) answering the repo metadata: status.resolved, the Resolved
condition, and the decided backend in the Deployment it builds."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from testkit import fake_cluster, hub_server

pytestmark = pytest.mark.timeout(120)

TOKEN = "hf_do_not_show_me_123"
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
REPOS = {
    "acme/tiny-gguf": hub_server.HubRepo(files={"tiny.Q8_0.gguf": b"GGUF", "README.md": b"hi"}, tags=["gguf"]),
    "acme/split-gguf": hub_server.HubRepo(
        files={"README.md": b"hi", **{f"big.Q4_K_M-0000{n}-of-00003.gguf": b"GGUF" for n in (2, 3, 1)}}, tags=["gguf"]),
    "acme/two-gguf": hub_server.HubRepo(files={"m.Q4_K_M.gguf": b"GGUF", "m.Q8_0.gguf": b"GGUF"}),
    "acme/llama": hub_server.HubRepo(files={"config.json": LLAMA, "model.safetensors": b"x", "tokenizer.json": {}}),
    "acme/private-llama": hub_server.HubRepo(files={"config.json": LLAMA, "model.safetensors": b"x"}, token=TOKEN),
}


@pytest.fixture(scope="module")
def hub() -> Iterator[hub_server.HubServer]:
    with hub_server.HubServer(REPOS) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(hub: hub_server.HubServer) -> Iterator[fake_cluster.FakeCluster]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", hub.url)
        with fake_cluster.FakeCluster() as running:
            yield running


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return name[:63].rstrip("-")


def auto(repo: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "backend": "auto", "source": {"huggingFace": {"repo": repo}}, **extra}


def runtime_args(cluster: fake_cluster.FakeCluster, name: str, ns: str) -> list[str]:
    deployment = cluster.kube.get("apps/v1", "Deployment", name, ns)
    assert deployment is not None
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_gguf_repo_resolves_to_llama_cpp_and_its_file(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.apply_server("g", ns, **auto("acme/tiny-gguf"))
    status = cluster.wait_phase("g", "Ready", ns)
    assert status["resolved"]["backend"] == "llama-cpp"
    assert status["resolved"]["format"] == "GGUF"
    assert "tiny.Q8_0.gguf" in status["resolved"]["reason"]
    assert cluster.condition("g", "Resolved", ns)["status"] == "True"
    args = runtime_args(cluster, "g", ns)
    assert flag(args, "--backend") == "llama-cpp"
    assert flag(args, "--model").endswith("/tiny.Q8_0.gguf")
    assert "TextGeneration" in flag(args, "--capabilities")
    [job] = cluster.kube.list("batch/v1", "Job", ns, labels="app.kubernetes.io/managed-by=llmserver-operator")
    job_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(job_args, "--file") == "tiny.Q8_0.gguf"  # only the chosen GGUF is downloaded


def test_split_gguf_repo_resolves_to_its_first_part(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    first = "big.Q4_K_M-00001-of-00003.gguf"
    cluster.apply_server("split", ns, **auto("acme/split-gguf"))
    status = cluster.wait_phase("split", "Ready", ns)
    assert status["resolved"]["backend"] == "llama-cpp" and status["resolved"]["format"] == "GGUF"
    assert f"split in 3 parts: llama.cpp loads {first}" in status["resolved"]["reason"]
    assert cluster.condition("split", "Resolved", ns)["status"] == "True"
    args = runtime_args(cluster, "split", ns)
    assert flag(args, "--backend") == "llama-cpp"
    assert flag(args, "--model").endswith(f"/{first}")
    [job] = cluster.kube.list("batch/v1", "Job", ns, labels="app.kubernetes.io/managed-by=llmserver-operator")
    job_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(job_args, "--file") == first  # the download fetches this split's parts, not the whole repo


def test_hf_weights_with_gpus_resolve_to_vllm(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.kubelet.set_pod_mode("v", "pending", namespace=ns)
    cluster.apply_server("v", ns, **auto("acme/llama", resources={"gpus": 2}))
    cluster.wait_phase("v", "Starting", ns)
    status = cluster.status("v", ns)
    assert status["resolved"]["backend"] == "vllm" and status["resolved"]["capabilities"] == ["TextGeneration"]
    assert status["resolved"]["format"] == "HF-safetensors"
    args = runtime_args(cluster, "v", ns)
    assert flag(args, "--backend") == "vllm" and flag(args, "--tensor-parallel-size") == "2"
    pod = cluster.kube.get("apps/v1", "Deployment", "v", ns)["spec"]["template"]["spec"]
    assert any(volume["name"] == "dshm" for volume in pod["volumes"])


def test_hf_weights_on_cpu_resolve_to_transformers(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.apply_server("t", ns, **auto("acme/llama", transformers={"dtype": "float32"}))
    status = cluster.wait_phase("t", "Ready", ns)
    assert status["resolved"]["backend"] == "transformers"
    args = runtime_args(cluster, "t", ns)
    assert flag(args, "--backend") == "transformers" and flag(args, "--dtype") == "float32"


def test_undecidable_repo_is_a_condition_and_builds_nothing(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.apply_server("two", ns, **auto("acme/two-gguf"))
    status = cluster.wait_phase("two", "Failed", ns)
    resolved = cluster.condition("two", "Resolved", ns)
    assert resolved["status"] == "False" and resolved["reason"] == "CannotDecide"
    assert "2 GGUF models" in resolved["message"] and "m.Q4_K_M.gguf" in resolved["message"]
    assert "cannot decide" in status["message"]
    assert "backend" not in status["resolved"]
    assert cluster.kube.get("apps/v1", "Deployment", "two", ns) is None
    assert cluster.kube.list("batch/v1", "Job", ns) == []
    # naming the file settles it: the spec's value wins and the server proceeds
    spec = auto("acme/two-gguf")
    spec["source"]["huggingFace"]["file"] = "m.Q8_0.gguf"
    cluster.apply_server("two", ns, **spec)
    cluster.wait_phase("two", "Ready", ns)
    assert cluster.condition("two", "Resolved", ns)["status"] == "True"
    assert flag(runtime_args(cluster, "two", ns), "--model").endswith("/m.Q8_0.gguf")


def test_vision_asked_of_a_text_model_is_a_contradiction(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.apply_server("vis", ns, **auto("acme/llama", capabilities=["Vision"]))
    status = cluster.wait_phase("vis", "Ready", ns)
    condition = cluster.condition("vis", "Resolved", ns)
    assert condition["status"] == "False" and condition["reason"] == "Contradiction"
    assert "Vision" in condition["message"] and "TextGeneration" in condition["message"]
    assert status["resolved"]["capabilities"] == ["Vision"]  # explicit spec values win
    args = runtime_args(cluster, "vis", ns)
    assert flag(args, "--capabilities") == "Vision" and flag(args, "--backend") == "transformers"


def test_pvc_source_is_left_to_the_runtime(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models", "namespace": ns},
                         "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    cluster.apply_server("p", ns, model="m", backend="auto", source={"pvc": {"claimName": "models", "path": "llama"}})
    status = cluster.wait_phase("p", "Ready", ns)
    assert "runtime detects the backend" in status["resolved"]["reason"]
    assert cluster.condition("p", "Resolved", ns)["reason"] == "DecidedByRuntime"
    assert flag(runtime_args(cluster, "p", ns), "--backend") == "auto"


def test_private_repo_uses_the_token_secret_never_shows_it_and_caches(
        cluster: fake_cluster.FakeCluster, hub: hub_server.HubServer, ns: str) -> None:
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": ns},
                         "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    source = {"huggingFace": {"repo": "acme/private-llama", "tokenSecretRef": {"name": "hf", "key": "token"}}}
    cluster.apply_server("priv", ns, model="m", backend="auto", source=source)
    status = cluster.wait_phase("priv", "Ready", ns)
    assert status["resolved"]["backend"] == "transformers"
    asked = [r.authorization for r in hub.requests if "private-llama" in r.path]
    assert asked and all(auth == f"Bearer {TOKEN}" for auth in asked)
    server = cluster.server("priv", ns)
    events = cluster.kube.list("v1", "Event", ns)
    assert TOKEN not in json.dumps(server) and TOKEN not in json.dumps(events)

    # a no-op pass of the real reconciler: no Hub call, no API write
    before_requests = len(hub.requests)
    deployment_version = cluster.kube.get("apps/v1", "Deployment", "priv", ns)["metadata"]["resourceVersion"]
    server_version = server["metadata"]["resourceVersion"]
    assert cluster.operator is not None and cluster.operator.memo is not None
    cluster.operator.memo.reconciler.reconcile(ns, "priv")
    assert len(hub.requests) == before_requests
    assert cluster.kube.get("apps/v1", "Deployment", "priv", ns)["metadata"]["resourceVersion"] == deployment_version
    assert cluster.server("priv", ns)["metadata"]["resourceVersion"] == server_version


def test_unknown_repo_is_reported_and_left_to_the_runtime(cluster: fake_cluster.FakeCluster, ns: str) -> None:
    cluster.apply_server("nope", ns, **auto("acme/not-there"))
    status = cluster.wait_phase("nope", "Ready", ns)
    condition = cluster.condition("nope", "Resolved", ns)
    assert condition["status"] == "False" and condition["reason"] == "HubUnavailable"
    assert "acme/not-there was not found" in condition["message"]
    assert "backend" not in status["resolved"]
    assert flag(runtime_args(cluster, "nope", ns), "--backend") == "auto"


def test_explicit_backend_is_not_asked_of_the_hub(cluster: fake_cluster.FakeCluster, hub: hub_server.HubServer, ns: str) -> None:
    before = len(hub.requests)
    cluster.apply_server("e", ns, model="m", backend="llama-cpp",
                         source={"huggingFace": {"repo": "acme/tiny-gguf", "file": "tiny.Q8_0.gguf"}})
    status = cluster.wait_phase("e", "Ready", ns)
    assert len(hub.requests) == before
    assert status["resolved"]["backend"] == "llama-cpp" and "detected by the runtime" in status["resolved"]["reason"]
    assert cluster.condition("e", "Resolved", ns) == {}
