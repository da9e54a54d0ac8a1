"""The cluster-side commands against the stateful API emulator, through the real `kubernetes`
client and a real kubeconfig: add-server, remove-server, list-loaded, unload/load-model, download-model --in-cluster."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from llmserver_cli import cli
from llmserver_cli.commands import scaling
from testkit import emulator

API = "serving.llmserver.dev/v1alpha1"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def run(kube: emulator.KubeEmulator, *args: str) -> Result:
    return CliRunner().invoke(cli.main, [*args, "--kubeconfig", kube.kubeconfig], catch_exceptions=False)


def test_add_server_creates_then_updates_replacing_the_spec(kube: emulator.KubeEmulator) -> None:
    created = run(kube, "add-server", "--name", "qwen", "--model", "qwen-0.5b", "--backend", "llama-cpp",
                  "--model-path", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "--file", "q4.gguf", "--gpu-layers", "-1", "-n", "ml")
    assert created.exit_code == 0, created.output
    obj = kube.get(API, "LLMServer", "qwen", "ml")
    assert obj is not None and obj["spec"]["llamaCpp"] == {"nGpuLayers": -1}
    assert obj["spec"]["source"]["huggingFace"]["file"] == "q4.gguf"

    updated = run(kube, "add-server", "--name", "qwen", "--model", "qwen-0.5b", "--backend", "vllm", "--gpus", "2",
                  "--tensor-parallel", "2", "--model-path", "Qwen/Qwen2.5-0.5B-Instruct", "-n", "ml")
    assert updated.exit_code == 0, updated.output
    assert "updated" in updated.output
    obj = kube.get(API, "LLMServer", "qwen", "ml")
    assert obj is not None
    assert obj["spec"]["backend"] == "vllm" and obj["spec"]["vllm"] == {"tensorParallelSize": 2, "dtype": "auto"}
    assert "llamaCpp" not in obj["spec"] and "file" not in obj["spec"]["source"]["huggingFace"]
    assert obj["metadata"]["generation"] == 2

    again = run(kube, "add-server", "--name", "qwen", "--model", "qwen-0.5b", "--backend", "vllm", "--gpus", "2",
                "--tensor-parallel", "2", "--model-path", "Qwen/Qwen2.5-0.5B-Instruct", "-n", "ml")
    assert "unchanged" in again.output
    assert kube.get(API, "LLMServer", "qwen", "ml")["metadata"]["generation"] == 2  # type: ignore[index]


def test_contradictory_flags_never_reach_the_cluster(kube: emulator.KubeEmulator) -> None:
    before = len(kube.writes())
    result = CliRunner().invoke(cli.main, ["add-server", "--name", "bad", "--model", "m", "--backend", "transformers",
                                           "--load-in-4bit", "--load-in-8bit", "--model-path", "a/b",
                                           "--kubeconfig", kube.kubeconfig])  # fmt: skip
    assert result.exit_code == 2
    assert "--load-in-4bit and --load-in-8bit are mutually exclusive" in result.output
    assert len(kube.writes()) == before and kube.get(API, "LLMServer", "bad") is None


def test_list_loaded_shows_status(kube: emulator.KubeEmulator) -> None:
    assert run(kube, "add-server", "--name", "gpt", "--model", "gpt-4o-mini", "--proxy-url", "https://api.example.com/v1",
               "--api-key-secret", "openai:key").exit_code == 0  # fmt: skip
    kube.patch(API, "LLMServer", "gpt", {"status": {"phase": "Ready", "endpoint": "http://gw.default.svc/v1"}},
               subresource="status")  # fmt: skip
    result = run(kube, "list-loaded", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert "gpt" in rows and "qwen" not in rows  # qwen lives in namespace ml
    assert (rows["gpt"]["mode"], rows["gpt"]["phase"], rows["gpt"]["ready"]) == ("Proxy", "Ready", "yes")
    assert rows["gpt"]["endpoint"] == "http://gw.default.svc/v1"
    everywhere = json.loads(run(kube, "list-loaded", "-A", "-o", "json").output)
    assert {(r["namespace"], r["name"]) for r in everywhere} >= {("default", "gpt"), ("ml", "qwen")}
    table = run(kube, "list-loaded", "-A")
    assert "qwen" in table.output and "NAMESPACE" in table.output


def test_unload_and_load_model_scale_and_remember(kube: emulator.KubeEmulator) -> None:
    assert run(kube, "add-server", "--name", "tiny", "--model", "tiny", "--model-path", "pvc:models/tiny.gguf",
               "--replicas", "3").exit_code == 0  # fmt: skip
    unloaded = run(kube, "unload-model", "tiny")
    assert unloaded.exit_code == 0, unloaded.output
    obj = kube.get(API, "LLMServer", "tiny")
    assert obj is not None and obj["spec"]["replicas"] == 0 and obj["metadata"]["annotations"][scaling.ANNOTATION] == "3"
    assert "already unloaded" in run(kube, "unload-model", "tiny").output
    assert run(kube, "load-model", "tiny").exit_code == 0
    obj = kube.get(API, "LLMServer", "tiny")
    assert obj is not None and obj["spec"]["replicas"] == 3 and scaling.ANNOTATION not in obj["metadata"].get("annotations", {})
    missing = CliRunner().invoke(cli.main, ["unload-model", "nope", "--kubeconfig", kube.kubeconfig])
    assert missing.exit_code == 1 and "LLMServer 'nope' not found in namespace 'default'" in missing.output


def test_download_in_cluster_needs_the_cache_claim_then_creates_the_job(kube: emulator.KubeEmulator) -> None:
    args = ["download-model", "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "--file", "q4.gguf", "--in-cluster", "--claim", "cache"]
    refused = CliRunner().invoke(cli.main, [*args, "--kubeconfig", kube.kubeconfig])
    assert refused.exit_code == 1 and "cache PVC 'cache' not found" in refused.output
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cache"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})  # fmt: skip
    created = run(kube, *args)
    assert created.exit_code == 0, created.output
    jobs = kube.list("batch/v1", "Job", "default")
    assert len(jobs) == 1
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["download", "--repo", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"]
    assert jobs[0]["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "cache"


def test_remove_server_deletes_the_llmserver_by_name_or_model(kube: emulator.KubeEmulator) -> None:
    for name in ("gone-a", "gone-b"):
        added = run(kube, "add-server", "--name", name, "--model", f"{name}-model", "--backend", "llama-cpp",
                    "--model-path", "acme/tiny-gguf", "--file", "m.gguf", "-n", "rm")
        assert added.exit_code == 0, added.output
    by_name = run(kube, "remove-server", "gone-a", "-n", "rm")
    assert by_name.exit_code == 0 and "deleted LLMServer rm/gone-a" in by_name.output, by_name.output
    by_model = run(kube, "remove-server", "gone-b-model", "-n", "rm")
    assert by_model.exit_code == 0 and "rm/gone-b" in by_model.output, by_model.output
    assert kube.get(API, "LLMServer", "gone-a", "rm") is None and kube.get(API, "LLMServer", "gone-b", "rm") is None
    missing = CliRunner().invoke(cli.main, ["remove-server", "gone-a", "-n", "rm", "--kubeconfig", kube.kubeconfig])
    assert missing.exit_code == 1 and "not found in namespace 'rm'" in missing.output, missing.output


def test_no_kubeconfig_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(cli.main, ["list-loaded", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no usable kubeconfig" in result.output and "--local" in result.output


def test_unreachable_cluster_is_one_line(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: team}}]\nusers: [{name: u, user: {}}]\n"
    )
    result = CliRunner().invoke(cli.main, ["list-loaded", "--kubeconfig", str(config)])
    assert result.exit_code == 1 and "cannot reach the cluster" in result.output and "Traceback" not in result.output
