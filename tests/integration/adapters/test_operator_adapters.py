"""Issue 21's adapter acceptance in a cluster: LLMServers with spec.adapters (pvc sources, files
already on the claim) reconciled by the real kopf operator against the API emulator, pods run as
real `llmserver-runtime serve` processes by the kubelet simulator, and the real
`llmserver-gateway --kubernetes` answering `<model>:<adapter>` (official openai SDK).

- llama-cpp (a restart engine): the adapters are in the pod's command line (`--adapter NAME=/models/...`).
- transformers (a live engine): the pod's command line has no adapter; the operator loads them
  over HTTP on each ready replica. The load body names `/models/...`, so these pods run with the
  claim really mounted at /models (the simulator's `mount_models`: a mount namespace per process,
  root only); where that cannot work the test is skipped with the reason.

Both end with status.adapters Ready and readyReplicas counting every replica."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from testkit import fake_cluster, fake_upstreams

pytestmark = pytest.mark.timeout(600)

NS = "adapters"
CLAIM = "store"
PROMPT = "Once upon a time"


def _pvc(path: str) -> dict[str, Any]:
    return {"pvc": {"claimName": CLAIM, "path": path}}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str, tiny_hf_causal: str,
               write_lora: Callable[[str, str, pathlib.Path, int], str]) -> pathlib.Path:
    """The claim's files: each tiny model and two adapters for it. Real copies, not symlinks: a live
    load's path must resolve inside /models, the runtime's trusted tree."""
    root = tmp_path_factory.mktemp("claim")
    shutil.copy(tiny_gguf, root / "tiny.gguf")
    shutil.copytree(tiny_hf_causal, root / "tiny-hf", symlinks=False)
    (root / "loras").mkdir()
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        write_lora("gguf-lora", str(root / "tiny.gguf"), root / "loras" / f"{name}.gguf", seed)
        write_lora("hf-lora", str(root / "tiny-hf"), root / "loras" / f"hf-{name}", seed)
    return root


@pytest.fixture(scope="module")
def cluster(models_dir: pathlib.Path, models_mountpoint: bool) -> Iterator[fake_cluster.FakeCluster]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES", raising=False)  # the default image catalog
        with fake_cluster.FakeCluster(models_dir=str(models_dir), pods="process") as running:
            assert running.kubelet is not None
            running.kubelet.mount_models = models_mountpoint
            claim_spec = {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}
            running.kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "metadata": {"name": CLAIM, "namespace": NS}, "spec": claim_spec})
            yield running
            assert not running.kubelet.errors, running.kubelet.errors


@pytest.fixture(scope="module")
def gateway(cluster: fake_cluster.FakeCluster,
            run_gateway: Callable[..., fake_upstreams.Proc]) -> Iterator[openai.OpenAI]:
    proc = run_gateway("--kubernetes", "--namespace", NS, ready="/ready", env={"KUBECONFIG": cluster.kube.kubeconfig})
    with openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def _greedy(client: openai.OpenAI, model: str) -> str:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def _adapters_ready(cluster: fake_cluster.FakeCluster, name: str, replicas: int,
                    timeout: float) -> list[dict[str, Any]]:
    """status.adapters once the server is Ready and every adapter Ready on every replica."""
    def ready() -> list[dict[str, Any]] | None:
        status = cluster.status(name, NS)
        listed = status.get("adapters") or []
        done = status.get("phase") == "Ready" and len(listed) == 2 and all(
            entry.get("phase") == "Ready" and entry.get("readyReplicas") == replicas for entry in listed)
        return listed if done else None

    try:
        return cluster.kube.wait_for(ready, timeout)
    except TimeoutError:
        raise AssertionError(f"{name}: adapters not Ready on {replicas} replicas: {cluster.status(name, NS)}") from None


def _answers_through_gateway(client: openai.OpenAI, model: str, timeout: float = 60) -> dict[str, str]:
    """Greedy answers of the base model and both adapters, once the gateway routes all three (it
    learns the adapters from each replica's /v1/models; until then an adapter is a 503)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return {name: _greedy(client, name) for name in (model, f"{model}:a", f"{model}:b")}
        except (openai.InternalServerError, openai.NotFoundError):
            assert time.monotonic() < deadline, f"the gateway did not route {model}'s adapters in {timeout}s"
            time.sleep(0.2)


def _argv(cluster: fake_cluster.FakeCluster, name: str) -> list[str]:
    [deployment] = [d for d in cluster.kube.list("apps/v1", "Deployment", NS) if d["metadata"]["name"] == name]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [*(container.get("command") or []), *(container.get("args") or [])]


def _replica_urls(cluster: fake_cluster.FakeCluster, name: str) -> list[str]:
    """The ready replicas behind the server's Service (process mode: one EndpointSlice per port)."""
    slices = cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", NS, labels=f"kubernetes.io/service-name={name}")
    return [f"http://{endpoint['addresses'][0]}:{piece['ports'][0]['port']}/v1"
            for piece in slices for endpoint in piece["endpoints"] if endpoint["conditions"]["ready"]]


def _pods(cluster: fake_cluster.FakeCluster, name: str) -> set[str]:
    return {pod["metadata"]["name"] for pod in cluster.kube.list("v1", "Pod", NS)
            if (pod["metadata"].get("labels") or {}).get("serving.llmserver.dev/server") == name}


def _until_answer(client: openai.OpenAI, model: str, timeout: float = 60) -> str:
    """`model`'s greedy answer once the gateway routes it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _greedy(client, model)
        except (openai.InternalServerError, openai.NotFoundError):
            assert time.monotonic() < deadline, f"the gateway did not route {model} in {timeout}s"
            time.sleep(0.2)


def _until_unknown(client: openai.OpenAI, model: str, timeout: float = 60) -> None:
    """Waits until `model` is a 404 model_not_found through the gateway."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _greedy(client, model)
        except openai.NotFoundError as exc:
            assert exc.code == "model_not_found"
            return
        except openai.InternalServerError:
            pass
        assert time.monotonic() < deadline, f"{model} still routed after {timeout}s"
        time.sleep(0.2)


def _check_served(cluster: fake_cluster.FakeCluster, client: openai.OpenAI, name: str, replicas: int) -> None:
    listed = _adapters_ready(cluster, name, replicas, timeout=300)
    assert sorted(entry["name"] for entry in listed) == ["a", "b"]
    answers = _answers_through_gateway(client, name)
    assert len(set(answers.values())) == 3, answers
    models = {model.id: model.model_dump() for model in client.models.list() if model.id.startswith(name)}
    assert set(models) == {name, f"{name}:a", f"{name}:b"}
    assert models[f"{name}:b"].get("parent") == name
    with pytest.raises(openai.NotFoundError) as unknown:
        _greedy(client, f"{name}:nope")
    assert unknown.value.code == "model_not_found"


def test_restart_engine_serves_adapters_from_its_command_line(cluster: fake_cluster.FakeCluster,
                                                              gateway: openai.OpenAI) -> None:
    adapters = [{"name": n, "source": _pvc(f"loras/{n}.gguf")} for n in ("a", "b")]
    cluster.apply_server("gguf", NS, model="gguf", backend="llama-cpp", source=_pvc("tiny.gguf"), adapters=adapters)
    _check_served(cluster, gateway, "gguf", replicas=1)
    argv = _argv(cluster, "gguf")
    assert "a=/models/loras/a.gguf" in argv and "b=/models/loras/b.gguf" in argv, argv


def test_live_engine_gets_adapters_loaded_by_the_operator(cluster: fake_cluster.FakeCluster, gateway: openai.OpenAI,
                                                          models_mountpoint: bool) -> None:
    if not models_mountpoint:
        pytest.skip("no mount namespace with a real /models here (needs root and unshare): a live load of "
                    "/models/... cannot resolve in a simulated pod")
    adapters = [{"name": n, "source": _pvc(f"loras/hf-{n}")} for n in ("a", "b")]
    cluster.apply_server("hf", NS, model="hf", backend="transformers", source=_pvc("tiny-hf"), adapters=adapters,
                         replicas=2)
    _check_served(cluster, gateway, "hf", replicas=2)
    assert not any("--adapter" in arg for arg in _argv(cluster, "hf")), "a live engine's pods carry no adapter"
    assert os.path.isdir("/models") and not os.listdir("/models"), "the host's /models stays an empty mountpoint"


def _change_adapters(cluster: fake_cluster.FakeCluster, client: openai.OpenAI, name: str, replicas: int,
                     adapter_path: Callable[[str], str]) -> None:
    """Swaps adapter b for c on a served server; c answers through the gateway, b is unknown."""
    server = cluster.server(name, NS)
    assert server is not None
    spec = {**server["spec"], "adapters": [{"name": n, "source": _pvc(adapter_path(n))} for n in ("a", "c")]}
    base = _until_answer(client, name)
    cluster.apply_server(name, NS, **spec)

    def swapped() -> bool:
        listed = cluster.status(name, NS).get("adapters") or []
        return sorted((e["name"], e.get("phase"), e.get("readyReplicas")) for e in listed) == [
            ("a", "Ready", replicas), ("c", "Ready", replicas)]

    try:
        cluster.kube.wait_for(swapped, 300)
    except TimeoutError:
        raise AssertionError(f"{name}: a and c not Ready: {cluster.status(name, NS)}") from None
    assert _until_answer(client, f"{name}:c") != base
    _until_unknown(client, f"{name}:b")


def test_restart_engine_rolls_when_its_adapters_change(cluster: fake_cluster.FakeCluster,
                                                       gateway: openai.OpenAI) -> None:
    adapters = [{"name": n, "source": _pvc(f"loras/{n}.gguf")} for n in ("a", "b")]
    cluster.apply_server("gguf-roll", NS, model="gguf-roll", backend="llama-cpp", source=_pvc("tiny.gguf"),
                         adapters=adapters)
    _adapters_ready(cluster, "gguf-roll", 1, timeout=300)
    before = _pods(cluster, "gguf-roll")
    _change_adapters(cluster, gateway, "gguf-roll", 1, lambda n: f"loras/{n}.gguf")
    argv = _argv(cluster, "gguf-roll")
    assert "c=/models/loras/c.gguf" in argv and not any(arg.startswith("b=") for arg in argv), argv
    assert before.isdisjoint(_pods(cluster, "gguf-roll")), "the pod was replaced to start with c"


def test_live_engine_changes_adapters_without_a_restart(cluster: fake_cluster.FakeCluster, gateway: openai.OpenAI,
                                                        models_mountpoint: bool) -> None:
    if not models_mountpoint:
        pytest.skip("no mount namespace with a real /models here (needs root and unshare)")
    adapters = [{"name": n, "source": _pvc(f"loras/hf-{n}")} for n in ("a", "b")]
    cluster.apply_server("hf-swap", NS, model="hf-swap", backend="transformers", source=_pvc("tiny-hf"),
                         adapters=adapters, replicas=2)
    _adapters_ready(cluster, "hf-swap", 2, timeout=300)
    before, template = _pods(cluster, "hf-swap"), _argv(cluster, "hf-swap")
    _change_adapters(cluster, gateway, "hf-swap", 2, lambda n: f"loras/hf-{n}")
    assert _pods(cluster, "hf-swap") == before and len(before) == 2, "the replicas kept running"
    assert _argv(cluster, "hf-swap") == template
    urls = _replica_urls(cluster, "hf-swap")
    assert len(urls) == 2, urls
    for url in urls:  # b unloaded from each replica, c loaded
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30) as replica:
            assert sorted(m.id for m in replica.models.list()) == ["hf-swap", "hf-swap:a", "hf-swap:c"]


def test_a_server_added_by_the_cli_with_adapters_is_served(cluster: fake_cluster.FakeCluster,
                                                           gateway: openai.OpenAI) -> None:
    """`llmserver add-server --adapter NAME=pvc:CLAIM/PATH` (the real CLI process) -> the same flow."""
    llmserver = str(pathlib.Path(sys.executable).with_name("llmserver"))  # this venv's console script
    command = [llmserver, "add-server", "--name", "gguf-cli", "--model", "gguf-cli",
               "--backend", "llama-cpp", "--model-path", f"pvc:{CLAIM}/tiny.gguf", "-n", NS,
               "--adapter", f"a=pvc:{CLAIM}/loras/a.gguf", "--adapter", f"b=pvc:{CLAIM}/loras/b.gguf",
               "--kubeconfig", cluster.kube.kubeconfig]
    added = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    _check_served(cluster, gateway, "gguf-cli", replicas=1)
