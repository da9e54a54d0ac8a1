"""`list-loaded`, `unload-model` and `load-model` on autoscaled LLMServers, against the stateful API
emulator (the project's CRDs, so the schema and its CEL rules judge every write) through the real
`kubernetes` client: a model the autoscaler left at zero is listed Cold with its bounds; unloading
moves spec.autoscaling into an annotation (the autoscaler can no longer wake it) and loading puts
it back with replicas inside its bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from llmserver_cli import cli
from llmserver_cli.commands import scaling
from testkit import emulator

API = "serving.llmserver.dev/v1alpha1"
BLOCK = {"minReplicas": 0, "maxReplicas": 3, "scaleDownDelaySeconds": 60, "fallback": "small"}
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def run(kube: emulator.KubeEmulator, *args: str) -> Result:
    return CliRunner().invoke(cli.main, [*args, "--kubeconfig", kube.kubeconfig], catch_exceptions=False)


def _create(kube: emulator.KubeEmulator, name: str, replicas: int) -> dict[str, Any]:
    return kube.create({"apiVersion": API, "kind": "LLMServer", "metadata": {"name": name, "namespace": "default"},
                        "spec": {"model": name, "backend": "llama-cpp", "replicas": replicas, "autoscaling": BLOCK,
                                 "source": {"pvc": {"claimName": "models", "path": f"{name}.gguf"}}}})  # fmt: skip


def test_cold_models_are_listed_with_their_bounds(kube: emulator.KubeEmulator) -> None:
    _create(kube, "sleeper", 0)
    _create(kube, "awake", 2)
    kube.patch(API, "LLMServer", "sleeper", {"status": {"phase": "Unloaded", "readyReplicas": 0}}, subresource="status")
    kube.patch(API, "LLMServer", "awake", {"status": {"phase": "Ready", "readyReplicas": 2}}, subresource="status")
    rows = {row["name"]: row for row in json.loads(run(kube, "list-loaded", "-o", "json").output)}
    seen = {name: (row["phase"], row["ready"], row["autoscaling"]) for name, row in rows.items()}
    assert (seen["sleeper"], seen["awake"]) == (("Cold", "0/0", "0..3"), ("Ready", "2/2", "0..3"))
    table = run(kube, "list-loaded").output
    assert "AUTOSCALING" in table and "Cold" in table


def test_unload_keeps_the_block_aside_and_load_restores_it(kube: emulator.KubeEmulator) -> None:
    stored = _create(kube, "busy", 2)["spec"]["autoscaling"]  # BLOCK with the schema's defaults
    unloaded = run(kube, "unload-model", "busy")
    assert unloaded.exit_code == 0, unloaded.output
    obj = kube.get(API, "LLMServer", "busy")
    assert obj is not None and obj["spec"]["replicas"] == 0 and "autoscaling" not in obj["spec"]
    annotations = obj["metadata"]["annotations"]
    assert annotations[scaling.ANNOTATION] == "2" and json.loads(annotations[scaling.AUTOSCALING_ANNOTATION]) == stored
    assert "already unloaded" in run(kube, "unload-model", "busy").output
    assert run(kube, "load-model", "busy").exit_code == 0
    obj = kube.get(API, "LLMServer", "busy")
    assert obj is not None and obj["spec"]["replicas"] == 2 and obj["spec"]["autoscaling"] == stored
    assert not {scaling.ANNOTATION, scaling.AUTOSCALING_ANNOTATION} & set(obj["metadata"].get("annotations") or {})


def test_load_model_warms_a_cold_model(kube: emulator.KubeEmulator) -> None:
    stored = _create(kube, "cold", 0)["spec"]["autoscaling"]
    loaded = run(kube, "load-model", "cold")
    assert loaded.exit_code == 0 and "replicas → 1" in loaded.output
    obj = kube.get(API, "LLMServer", "cold")
    assert obj is not None and obj["spec"]["replicas"] == 1 and obj["spec"]["autoscaling"] == stored
