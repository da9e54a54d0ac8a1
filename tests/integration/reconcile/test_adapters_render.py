"""`llmserver render` and the reconciler agree for a server with adapters: once the model's and
every adapter's Job succeeded, the real Reconciler (no kopf) has written exactly what `render`
prints (adapter Jobs, one identity, the runtime command line with each `--adapter`)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from llmserver_operator import kube as kube_mod
from llmserver_operator import reconciler as reconciler_mod
from llmserver_operator import render
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common
from testkit import emulator

pytestmark = pytest.mark.timeout(120)

NS = "render-adapters"
KINDS = (("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
         ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("v1", "PersistentVolumeClaim"), ("batch/v1", "Job"),
         ("apps/v1", "Deployment"), ("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy"))
SERVER_SET = ("uid", "resourceVersion", "generation", "creationTimestamp", "ownerReferences", "managedFields")


def _as_written(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the operator wrote it (as in test_render_matches_reconciler)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out["metadata"]
    for key in SERVER_SET:
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.pop("annotations", None) or {}).items() if k != common.CONFIG_HASH}
    if annotations:
        meta["annotations"] = annotations
    for ip in ("clusterIP", "clusterIPs"):
        (out.get("spec") or {}).pop(ip, None)
    return out


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def test_reconciler_writes_what_render_prints_with_adapters(kube: emulator.KubeEmulator) -> None:
    manifest = {
        "apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
        "metadata": {"name": "lora", "namespace": NS},
        "spec": {"model": "lora", "backend": "llama-cpp",
                 "source": {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}},
                 "adapters": [{"name": "sql",
                               "source": {"huggingFace": {"repo": "acme/sql-gguf-lora", "file": "a.gguf"}}},
                              {"name": "poem", "source": {"url": {"url": "https://m.example/poem.gguf",
                                                                  "sha256": "ef" * 32}}}]},
    }
    settings = settings_mod.Settings(kubeconfig=kube.kubeconfig, runtime_tag="9.9.9")
    [(_, rendered)] = render.render([copy.deepcopy(manifest)], settings)
    kube.create(copy.deepcopy(manifest))
    reconciler = reconciler_mod.Reconciler(kube_mod.Kube(kube_mod.configuration(kube.kubeconfig, 2)), settings)
    reconciler.reconcile(NS, "lora")
    jobs = kube.list("batch/v1", "Job", NS)
    assert len(jobs) == 3
    for job in jobs:
        kube.patch("batch/v1", "Job", job["metadata"]["name"], {"status": {"succeeded": 1}}, NS, subresource="status")
    reconciler.reconcile(NS, "lora")

    mine = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    created = {(obj["kind"], obj["metadata"]["name"]): _as_written(obj) for api_version, kind in KINDS
               for obj in kube.list(api_version, kind, NS) if (kind, obj["metadata"]["name"]) in mine}
    assert sorted(created) == sorted(mine)
    for obj in rendered:
        assert created[(obj["kind"], obj["metadata"]["name"])] == obj, obj["kind"]
    deployment = created[("Deployment", "lora")]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"].count("--adapter") == 2
    written = kube.get("serving.llmserver.dev/v1alpha1", "LLMServer", "lora", NS)["status"]["adapters"]
    assert [e["name"] for e in written] == ["sql", "poem"]
    assert all(common.SERVER_LABEL in j["metadata"]["labels"] for j in jobs)
