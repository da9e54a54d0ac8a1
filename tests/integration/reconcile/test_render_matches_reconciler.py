"""`llmserver render` and the reconciler write the same children: both take them from
`builders.plan`, and this checks it end to end. The real Reconciler (no kopf) converges an
LLMServer on the API emulator; what it created, less what the API server and the live owner add,
must be exactly what `render` prints for the same manifest."""

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

NS = "same"
KINDS = (("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
         ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("v1", "PersistentVolumeClaim"), ("batch/v1", "Job"),
         ("apps/v1", "Deployment"), ("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy"))
SERVER_SET = ("uid", "resourceVersion", "generation", "creationTimestamp", "ownerReferences", "managedFields")


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def _as_written(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the operator wrote it: no status, server fields, owner or config hash."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out["metadata"]
    for key in SERVER_SET:
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.pop("annotations", None) or {}).items() if k != common.CONFIG_HASH}
    if annotations:
        meta["annotations"] = annotations
    for ip in ("clusterIP", "clusterIPs"):  # assigned by the API server to a Service
        (out.get("spec") or {}).pop(ip, None)
    return out


@pytest.mark.parametrize("cache", [{}, {"deleteOnServerDelete": True, "claimName": "own-cache"}])
def test_reconciler_creates_exactly_what_render_prints(kube: emulator.KubeEmulator, cache: dict[str, Any]) -> None:
    name = "owned" if cache else "shared"
    manifest = {
        "apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": name, "backend": "llama-cpp", "cache": cache,
                 "source": {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}},
    }
    settings = settings_mod.Settings(kubeconfig=kube.kubeconfig, runtime_tag="9.9.9")
    [(_, rendered)] = render.render([copy.deepcopy(manifest)], settings)
    kube.create(copy.deepcopy(manifest))
    reconciler = reconciler_mod.Reconciler(kube_mod.Kube(kube_mod.configuration(kube.kubeconfig, 2)), settings)
    reconciler.reconcile(NS, name)  # download children and the Service; the Deployment waits for the Job
    [job] = [j for j in kube.list("batch/v1", "Job", NS) if j["metadata"]["labels"].get(common.SERVER_LABEL) == name]
    kube.patch("batch/v1", "Job", job["metadata"]["name"], {"status": {"succeeded": 1}}, NS, subresource="status")
    reconciler.reconcile(NS, name)

    mine = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    created = [_as_written(obj) for api_version, kind in KINDS for obj in kube.list(api_version, kind, NS)
               if (kind, obj["metadata"]["name"]) in mine]
    by_key = {(obj["kind"], obj["metadata"]["name"]): obj for obj in created}
    assert sorted(by_key) == sorted(mine)
    for obj in rendered:
        assert by_key[(obj["kind"], obj["metadata"]["name"])] == obj, obj["kind"]
