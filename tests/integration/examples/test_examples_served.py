"""Every example whose engine runs on this CPU, served for real: example manifest → real operator →
pod (a local process running the operator's command line) → runtime → one OpenAI SDK request.

Each manifest is loaded from examples/valid unchanged except for `spec.source`, pointed at a tiny
model of the same format (STAND_INS), and `spec.resources` cpu/memory, dropped to fit
this machine. GPU examples cannot run here (tests/unit/examples covers their image choice), nor
can Proxy or Mac ones (no pods). A CPU example added to examples/valid without a row here fails.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import yaml
from llmserver_api import paths
from llmserver_operator import images
from testkit import fake_cluster, hub_server, models

pytestmark = pytest.mark.timeout(420)

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples" / "valid"
HF = "huggingFace"

# Stand-in repos (Hugging Face sources) and claim paths (PVC sources): name -> tiny model kind.
GGUF_FILE = "tiny.gguf"
STAND_INS = {
    "testkit/tiny-gguf": "gguf",
    "testkit/tiny-llama": "hf-causal",
    "testkit/tiny-reranker": "hf-rerank",
    "testkit/minilm": "minilm",
}
CLAIM_PATH = f"tiny/{GGUF_FILE}"
# S3 and URL stand-ins: the simulated download Job succeeds; the GGUF waits at their cache paths.
S3_STAND_IN = {"s3": {"bucket": "testkit", "key": f"tiny/{GGUF_FILE}"}}
URL_STAND_IN = {"url": {"url": f"https://models.testkit.example/{GGUF_FILE}", "sha256": "ab" * 32}}


def model_path(kind: str) -> pathlib.Path:
    """The generated (or packaged) model of `kind`: a GGUF file or a Hugging Face directory."""
    return pathlib.Path(models.minilm_path() if kind == "minilm" else models.tiny_model_path(kind))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("models")
    for repo, kind in STAND_INS.items():
        target = root / paths.huggingface_dir(repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "gguf":
            target.mkdir()
            os.symlink(model_path(kind), target / GGUF_FILE)
        else:
            os.symlink(model_path(kind), target)
    (root / CLAIM_PATH).parent.mkdir(parents=True)
    os.symlink(model_path("gguf"), root / CLAIM_PATH)
    for relative in (paths.s3_path(S3_STAND_IN["s3"]["bucket"], S3_STAND_IN["s3"]["key"]),
                     paths.url_path(URL_STAND_IN["url"]["url"], URL_STAND_IN["url"]["sha256"])):  # fmt: skip
        (root / relative).parent.mkdir(parents=True)
        os.symlink(model_path("gguf"), root / relative)
    return root


@pytest.fixture(scope="module")
def hub() -> Iterator[hub_server.HubServer]:
    """Serves the tiny causal model's files under its stand-in name, for `backend: auto`."""
    directory = model_path("hf-causal")
    files = {path.name: path.read_bytes() for path in directory.iterdir()
             if path.is_file() and not path.name.startswith(".")}
    repos = {"testkit/tiny-llama": hub_server.HubRepo(files=files, tags=["transformers", "safetensors", "llama"],
                                                      library_name="transformers", pipeline_tag="text-generation")}
    with hub_server.HubServer(repos) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(models_dir: pathlib.Path, hub: hub_server.HubServer) -> Iterator[fake_cluster.FakeCluster]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", hub.url)
        patch.delenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES", raising=False)  # the default image catalog
        with fake_cluster.FakeCluster(models_dir=str(models_dir), pods="process") as running:
            yield running
            assert running.kubelet is not None and not running.kubelet.errors, running.kubelet.errors


def _chat(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.model == model
    assert reply.choices[0].message.content is not None and reply.usage is not None
    assert reply.usage.completion_tokens >= 1


def _embed(client: openai.OpenAI, model: str) -> None:
    reply = client.embeddings.create(model=model, input=["a cat", "a dog"])
    assert reply.model == model
    assert [item.index for item in reply.data] == [0, 1]
    assert len(reply.data[0].embedding) == 384  # all-MiniLM-L6-v2


def _rerank(client: openai.OpenAI, model: str) -> None:
    reply: Any = client.post("/rerank", body={"model": model, "query": "cats", "documents": ["a cat", "a car"]},
                             cast_to=object)
    assert sorted(item["index"] for item in reply["results"]) == [0, 1]
    assert all(isinstance(item["relevance_score"], float) for item in reply["results"])


@dataclasses.dataclass(frozen=True)
class Served:
    """How one example runs here: its stand-in source, the engine the operator must decide (for
    `backend: auto`, from the Hub stand-in) and the request its capability answers."""

    source: dict[str, Any]
    engine: str
    request: Callable[[openai.OpenAI, str], None]


def _hf(repo: str, file: str | None = None) -> dict[str, Any]:
    return {HF: {"repo": repo, **({"file": file} if file else {})}}


CPU_EXAMPLES: dict[str, Served] = {
    # backend auto: the operator decides transformers from the Hub stand-in's files
    "auto-minimal.yaml": Served(_hf("testkit/tiny-llama"), "transformers", _chat),
    "embeddings-bge.yaml": Served(_hf("testkit/minilm"), "transformers", _embed),
    "llama-cpp-qwen-gguf.yaml": Served(_hf("testkit/tiny-gguf", GGUF_FILE), "llama-cpp", _chat),
    "pvc-source-gguf.yaml": Served({"pvc": {"claimName": "model-store", "path": CLAIM_PATH}}, "llama-cpp", _chat),
    "rerank-bge-reranker.yaml": Served(_hf("testkit/tiny-reranker"), "transformers", _rerank),
    "s3-source-gguf.yaml": Served(S3_STAND_IN, "llama-cpp", _chat),
    "transformers-8bit-cpu.yaml": Served(_hf("testkit/tiny-llama"), "transformers", _chat),
    "url-source-gguf.yaml": Served(URL_STAND_IN, "llama-cpp", _chat),
}


def _load(name: str) -> dict[str, Any]:
    [document] = [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]
    return document


def _runs_here(document: dict[str, Any]) -> bool:
    """A self-hosted LLMServer in the cluster, without GPUs: its engine runs on this CPU."""
    spec = document.get("spec") or {}
    return (document.get("kind") == "LLMServer" and spec.get("mode", "SelfHosted") == "SelfHosted"
            and "apple" not in spec and not (spec.get("resources") or {}).get("gpus"))


def stand_in(document: dict[str, Any], served: Served) -> dict[str, Any]:
    """The example with the tiny model as its source and no cpu/memory requests (the namespace
    defaulted as kubectl would: the examples that name none are applied to `default`)."""
    out = copy.deepcopy(document)
    out["metadata"].setdefault("namespace", "default")
    spec = out["spec"]
    [kind] = spec["source"]  # huggingFace, pvc, s3 or url
    assert kind in served.source, "the stand-in keeps the example's kind of source"
    if kind == HF:
        assert ("file" in spec["source"][HF]) == ("file" in served.source[HF]), "a single file stays a single file"
    spec["source"] = served.source
    resources = {key: value for key, value in (spec.get("resources") or {}).items() if key not in ("cpu", "memory")}
    spec.pop("resources", None)
    if resources:
        spec["resources"] = resources
    return out


def test_every_cpu_example_is_served_here() -> None:
    runs_here = {path.name for path in EXAMPLES.glob("*.y*ml") if _runs_here(_load(path.name))}
    assert runs_here == set(CPU_EXAMPLES), "add a row to CPU_EXAMPLES for each CPU example (or drop a stale one)"


def test_the_stand_in_changes_only_source_and_cpu_memory() -> None:
    for name, served in CPU_EXAMPLES.items():
        original, changed = _load(name), stand_in(_load(name), served)
        assert {k: v for k, v in original["spec"].items() if k not in ("source", "resources")} == \
               {k: v for k, v in changed["spec"].items() if k not in ("source", "resources")}
        kept = {k: v for k, v in (original["spec"].get("resources") or {}).items() if k not in ("cpu", "memory")}
        assert (changed["spec"].get("resources") or {}) == kept
        assert changed["metadata"] == {"namespace": "default", **original["metadata"]}
        assert {k: v for k, v in changed.items() if k not in ("metadata", "spec")} == \
               {k: v for k, v in original.items() if k not in ("metadata", "spec")}


def _settled(cluster: fake_cluster.FakeCluster, name: str, namespace: str, replicas: int,
             timeout: float) -> dict[str, Any]:
    """The server's status once Ready with every replica, or Failed (a crash fails fast), for its
    current generation."""
    def settled() -> dict[str, Any] | None:
        server = cluster.server(name, namespace) or {}
        status = server.get("status") or {}
        current = status.get("observedGeneration") == server["metadata"].get("generation")
        ready = status.get("phase") == "Ready" and status.get("readyReplicas") == replicas
        return status if current and (ready or status.get("phase") == "Failed") else None

    try:
        return cluster.kube.wait_for(settled, timeout)
    except TimeoutError:
        status = cluster.status(name, namespace)
        raise AssertionError(f"{namespace}/{name} neither Ready nor Failed: {status}") from None


def _endpoints(cluster: fake_cluster.FakeCluster, name: str, namespace: str) -> list[str]:
    """Base URLs of the ready pods behind the server's Service (one EndpointSlice per local port)."""
    slices = cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace,
                               labels=f"kubernetes.io/service-name={name}")
    return [f"http://{endpoint['addresses'][0]}:{piece['ports'][0]['port']}/v1"
            for piece in slices for endpoint in piece["endpoints"] if endpoint["conditions"]["ready"]]


@pytest.mark.parametrize("name", sorted(CPU_EXAMPLES))
def test_example_serves_its_capability(name: str, cluster: fake_cluster.FakeCluster) -> None:
    assert cluster.kubelet is not None
    served = CPU_EXAMPLES[name]
    document = stand_in(_load(name), served)
    server, namespace = document["metadata"]["name"], document["metadata"]["namespace"]
    if "pvc" in served.source and cluster.kube.get("v1", "PersistentVolumeClaim", "model-store", namespace) is None:
        cluster.kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "metadata": {"name": "model-store", "namespace": namespace},
                             "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
    cluster.kube.create(document)
    try:
        replicas = document["spec"].get("replicas", 1)
        status = _settled(cluster, server, namespace, replicas, timeout=300)
        assert status["phase"] == "Ready", status.get("message")
        cpu = images.default_catalog()["cpu"]
        assert status["resolved"]["flavour"] == "cpu" and status["resolved"]["image"] == cpu.image
        assert status["resolved"]["backend"] == served.engine
        assert served.engine in {engine.value for engine in cpu.engines}
        urls = cluster.kube.wait_for(lambda: (found := _endpoints(cluster, server, namespace))
                                     and len(found) == replicas and found, 60)
        for url in urls:  # every replica answers
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
            served.request(client, document["spec"]["model"])
    finally:
        cluster.kube.delete(fake_cluster.LLMS, "LLMServer", server, namespace)
        deadline = time.monotonic() + 60
        while cluster.kubelet.processes and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not cluster.kubelet.processes, "the runtime processes stop with their pods"
