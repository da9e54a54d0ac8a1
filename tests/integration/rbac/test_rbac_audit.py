"""The chart's RBAC against what the real operator and the real gateway send to the API.

The operator (kopf + our handlers, testkit.fake_cluster) and the gateway (`llmserver-runtime
gateway --kubernetes`, a process) run against the API emulator while every HTTP request it
receives is recorded. Each request is turned into RBAC attributes (verb, group, resource,
namespace) and must be allowed by the Roles/ClusterRoles the chart binds to that component's
ServiceAccount; and every permission the chart grants must have been used, except the few listed
in UNUSED_OK with the reason they cannot be exercised here. So the RBAC is derived from what the
code really does: a new API call without a chart update fails here, and so does a stale grant.
"""

from __future__ import annotations

import base64
import collections
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testkit import emulator, fake_cluster, fake_upstreams, helm, rbac

pytestmark = pytest.mark.timeout(240)

NS = "ml"
GATEWAY_SERVICE = f"{helm.NAMESPACE}/{helm.RELEASE}-llmserver-gateway"  # what the chart sets
SOURCE = {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}
# Grants the scenarios cannot exercise, with why they are still needed.
UNUSED_OK = {
    ("create", "", "events"): "kopf posts Warning events only when a handler fails",
    ("create", "events.k8s.io", "events"): "kopf posts events through events.k8s.io on newer clusters",
    ("get", "serving.llmserver.dev", "llmservers/status"): "the download Job's Role grants it; the operator "
    "must hold it itself to create that Role without the `escalate` verb",
    ("update", "serving.llmserver.dev", "llmservers/finalizers"): "an admission check, never a request "
    "(blockOwnerDeletion under OwnerReferencesPermissionEnforcement): test_operator_ha_rbac",
    ("create", "coordination.k8s.io", "leases"): "leader election runs before kopf: test_operator_ha_rbac",
    **{("get", group, resource): "the reconciler reads its children from the watch cache; it reads one from "
       "the API only after its create answered 409 (a foreign object holds the name: ChildConflict, or a lost "
       "race): test_resilience, test_operator_metrics"
       for group, resource in (("apps", "deployments"), ("batch", "jobs"), ("", "serviceaccounts"), ("", "services"),
                               ("networking.k8s.io", "networkpolicies"),
                               ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings"))},
    ("update", "coordination.k8s.io", "leases"): "leader election runs before kopf: test_operator_ha_rbac",
}
# Mac placement (apple.enabled) needs registered agents (tests/integration/apple); these grants are
# derived from llmserver_operator.apple (scheduler, handlers) and may go unused here.
APPLE = {
    ("get", "serving.llmserver.dev", "applenodes"), ("list", "serving.llmserver.dev", "applenodes"),
    ("watch", "serving.llmserver.dev", "applenodes"), ("patch", "serving.llmserver.dev", "applenodes"),
    ("patch", "serving.llmserver.dev", "applenodes/status"), ("get", "coordination.k8s.io", "leases"),
    ("create", "discovery.k8s.io", "endpointslices"), ("update", "discovery.k8s.io", "endpointslices"),
    ("delete", "discovery.k8s.io", "endpointslices"), ("list", "serving.llmserver.dev", "llmservers"),
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {key: _b64(value) for key, value in data.items()}}


def _check(requests: list[rbac.Request], values: dict[str, Any], account: str) -> set[rbac.Grant]:
    """Every request allowed under the chart rendered with `values`; returns the grants."""
    objects = helm.template(values)
    granted = rbac.grants(objects, f"{helm.RELEASE}-llmserver-{account}", helm.NAMESPACE)
    assert requests, "nothing was recorded"
    denied = sorted({str(r) for r in requests if not rbac.allowed(r, granted)})
    assert denied == [], f"the chart does not let the {account} do what its code does:\n" + "\n".join(denied)
    return granted


def _unused(granted: set[rbac.Grant], requests: list[rbac.Request]) -> list[str]:
    return sorted({f"{g.verb} {g.group or 'core'}/{g.resource}" for g in granted
                   if not rbac.used(g, requests) and (g.verb, g.group, g.resource) not in UNUSED_OK
                   and (g.verb, g.group, g.resource) not in APPLE})


def _operator_scenario(cluster: fake_cluster.FakeCluster) -> None:
    """Walks the reconciler's paths: download, scale, new source, PVC, proxy, Mac, failure, mode switch."""
    kube = cluster.kube
    kube.create(_secret("hf-token", NS, {"token": "hf_secret"}))
    provider = _secret("provider", NS, {"key": "sk-provider"})
    provider["metadata"]["labels"] = {"serving.llmserver.dev/proxy-key": "true"}  # a Proxy may send it
    kube.create(provider)
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "weights", "namespace": NS},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    token = {"tokenSecretRef": {"name": "hf-token", "key": "token"}}
    cluster.apply_server("hf", NS, model="hf", backend="llama-cpp", source={"huggingFace": {**SOURCE["huggingFace"], **token}})
    cluster.wait_phase("hf", "Ready", NS)
    cluster.apply_server("hf", NS, model="hf", backend="llama-cpp", replicas=2,
                         source={"huggingFace": {**SOURCE["huggingFace"], **token}})  # Deployment replaced
    cluster.wait_phase("hf", "Ready", NS)
    cluster.apply_server("hf", NS, model="hf", backend="llama-cpp", replicas=2,
                         source={"huggingFace": {"repo": "acme/tiny-GGUF", "file": "other.gguf"}})  # new Job
    cluster.wait_phase("hf", "Ready", NS)
    _repair_scenario(cluster)
    cluster.apply_server("pvc", NS, model="pvc", backend="llama-cpp", source={"pvc": {"claimName": "weights", "path": "m.gguf"}})
    cluster.wait_phase("pvc", "Ready", NS)
    # the autoscaler: lists the gateway Service's EndpointSlices, clamps spec.replicas through /scale
    cluster.apply_server("auto", NS, model="auto", backend="llama-cpp", replicas=3, source=SOURCE,
                         autoscaling={"minReplicas": 1, "maxReplicas": 2})
    kube.wait_for(lambda: (cluster.server("auto", NS) or {}).get("spec", {}).get("replicas") == 2, 30)
    # a live-adapter engine lists its Service's EndpointSlices to load adapters on each replica
    cluster.kubelet.set_pod_mode("lora", "pending", namespace=NS)
    cluster.apply_server("lora", NS, model="lora", backend="transformers", source={"huggingFace": {"repo": "acme/tiny"}},
                         adapters=[{"name": "a", "source": {"huggingFace": {"repo": "acme/lora"}}}])
    cluster.wait_phase("lora", "Starting", NS)
    cluster.apply_server("ext", NS, model="ext", mode="Proxy",
                         proxy={"url": "https://provider.example/v1", "apiKeySecretRef": {"name": "provider", "key": "key"}})
    cluster.wait_phase("ext", "Ready", NS)
    placed = {"apiVersion": fake_cluster.LLMS, "kind": "LLMServer", "metadata": {"name": "mac", "namespace": NS},
              "spec": {"model": "mac", "backend": "mlx", "source": SOURCE},
              "status": {"placement": {"node": "m2", "address": "10.0.0.9", "port": 18000}}}
    kube.create(placed, keep_status=True)
    cluster.kube.wait_for(lambda: cluster.status("mac", NS).get("observedGeneration"), 30)
    cluster.kubelet.set_job_outcome("fail", "RepositoryNotFoundError", exit_code=3, name_prefix="bad-")
    cluster.apply_server("bad", NS, model="bad", backend="llama-cpp", source=SOURCE)
    cluster.wait_phase("bad", "Failed", NS)
    cluster.apply_server("hf", NS, model="hf", mode="Proxy", proxy={"url": "https://provider.example/v1"})  # children go
    cluster.wait_phase("hf", "Ready", NS)
    cluster.kube.wait_for(lambda: not cluster.kube.list("apps/v1", "Deployment", NS, labels="serving.llmserver.dev/server=hf"), 30)
    cluster.kube.delete(fake_cluster.LLMS, "LLMServer", "ext", NS)
    time.sleep(1)  # let kopf see the deletion (it may release a finalizer)


STALE = {"metadata": {"annotations": {"serving.llmserver.dev/config-hash": "older"}}}
IDENTITY = (("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"))


def _repair_scenario(cluster: fake_cluster.FakeCluster) -> None:
    """As after an operator upgrade that changed a builder while a download runs: children carrying
    an older config hash are replaced (PUT) on the next reconcile."""
    kube = cluster.kube
    cluster.kubelet.set_job_outcome("hold", name_prefix="fix-")
    cluster.apply_server("fix", NS, model="fix", backend="llama-cpp", source=SOURCE)
    cluster.wait_phase("fix", "Downloading", NS)
    for api_version, kind in IDENTITY:
        kube.patch(api_version, kind, "fix-download", STALE, NS)
    kube.wait_for(lambda: kube.get("networking.k8s.io/v1", "NetworkPolicy", "fix", NS), 30)  # written after the Service
    kube.patch("v1", "Service", "fix", STALE, NS)
    kube.patch("networking.k8s.io/v1", "NetworkPolicy", "fix", STALE, NS)
    cluster.apply_server("fix", NS, model="fix", backend="llama-cpp", replicas=2, source=SOURCE)

    def repaired() -> bool:
        objects = [kube.get(api_version, kind, "fix-download", NS) for api_version, kind in IDENTITY]
        objects += [kube.get("v1", "Service", "fix", NS), kube.get("networking.k8s.io/v1", "NetworkPolicy", "fix", NS)]
        return all(o["metadata"]["annotations"]["serving.llmserver.dev/config-hash"] != "older" for o in objects)

    kube.wait_for(repaired, 30)
    job = kube.list("batch/v1", "Job", NS, labels="serving.llmserver.dev/server=fix")[0]
    cluster.kubelet.finish_job(NS, job["metadata"]["name"], "succeed")
    cluster.wait_phase("fix", "Ready", NS)


def test_operator_rbac_cluster_wide(recorded: list[rbac.Request]) -> None:
    with fake_cluster.FakeCluster(gateway_service=GATEWAY_SERVICE) as cluster:
        _operator_scenario(cluster)
    granted = _check(recorded, {}, "operator")
    assert _unused(granted, recorded) == [], _unused(granted, recorded)
    # Cluster-wide because it watches every namespace; of cluster-scoped kinds only AppleNodes (Macs).
    assert {g.resource for g in granted} & {"namespaces", "customresourcedefinitions", "clusterroles",
                                            "clusterrolebindings", "nodes", "persistentvolumes"} == set()


def test_operator_rbac_namespaced(recorded: list[rbac.Request]) -> None:
    with fake_cluster.FakeCluster(namespaces=[NS], apple_enabled=False, gateway_service=GATEWAY_SERVICE) as cluster:
        _operator_scenario(cluster)
    values = {"operator": {"watchNamespaces": [NS]}, "apple": {"enabled": False}}
    granted = _check(recorded, values, "operator")
    assert {g.namespace for g in granted} == {NS, helm.NAMESPACE}, "a namespaced install must grant nothing cluster-wide"
    assert {(g.verb, g.resource) for g in granted if g.namespace == helm.NAMESPACE} == {
        ("create", "leases"), ("get", "leases"), ("update", "leases"),  # its own leader Lease
        ("list", "endpointslices")}  # and the gateway's replicas (the autoscaler)
    # the operator's own grants are namespaced; the only ClusterRoles are the users' (aggregated into admin/edit/view)
    assert all(role["metadata"].get("labels", {}).get(f"rbac.authorization.k8s.io/aggregate-to-{kind}") == "true"
               for role in helm.by_kind(helm.template(values), "ClusterRole")
               for kind in [role["metadata"]["name"].rsplit("-", 1)[-1]])
    # With Macs on, the only cluster-wide grants are the Apple ones (AppleNodes are cluster-scoped).
    with_macs = _check(recorded, {"operator": {"watchNamespaces": [NS]}}, "operator")
    cluster_wide = {(g.verb, g.group, g.resource) for g in with_macs if g.namespace is None}
    assert cluster_wide and cluster_wide <= APPLE, cluster_wide
    # In its own namespace: the Macs' Leases (read), its leader Lease (test_operator_ha_rbac), the gateway's slices.
    assert {(g.verb, g.resource) for g in with_macs if g.namespace == helm.NAMESPACE} == {
        ("get", "leases"), ("create", "leases"), ("update", "leases"), ("list", "endpointslices")}


def test_operator_holds_what_its_download_role_grants() -> None:
    """Creating a Role needs every permission in it (or `escalate`, which the chart never grants)."""
    from llmserver_api import llmserver
    from llmserver_operator import settings as settings_mod
    from llmserver_operator.builders import download

    server = llmserver.LLMServer.model_validate({"metadata": {"name": "x", "namespace": NS},
                                                 "spec": {"model": "x", "source": SOURCE}})
    role = download.build_download_role(server, settings_mod.Settings())
    for values in ({}, {"operator": {"watchNamespaces": [NS]}}):
        granted = rbac.grants(helm.template(values), f"{helm.RELEASE}-llmserver-operator", helm.NAMESPACE)
        assert not {g for g in granted if g.verb in ("escalate", "bind", "impersonate")}
        for rule in role["rules"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [None]:
                        wanted = rbac.Request(verb, rule["apiGroups"][0], resource, NS, name)
                        assert rbac.allowed(wanted, granted), f"{wanted} is in the download Role but not the operator's"


@pytest.fixture
def gateway_world(tmp_path: Any, recorded: list[rbac.Request]) -> Iterator[tuple[emulator.KubeEmulator, Any]]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        kube.store.create(kube.store.by_kind("v1", "Secret"), helm.NAMESPACE,
                          _secret("gw-keys", helm.NAMESPACE, {"apiKeys": yaml.safe_dump([{"key": "sk-user"}])}))
        kube.create(_secret("provider", NS, {"key": "sk-provider"}))
        kube.create({"apiVersion": fake_cluster.LLMS, "kind": "LLMServer", "metadata": {"name": "ext", "namespace": NS},
                     "spec": {"model": "ext", "mode": "Proxy", "proxy": {
                         "url": "https://provider.example/v1", "apiKeySecretRef": {"name": "provider", "key": "key"}}}})
        kube.create({"apiVersion": fake_cluster.LLMS, "kind": "LLMServer", "metadata": {"name": "tiny", "namespace": NS},
                     "spec": {"model": "tiny", "source": SOURCE}})
        kube.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": "tiny-1", "namespace": NS, "labels": {"kubernetes.io/service-name": "tiny"}},
                     "addressType": "IPv4", "ports": [{"name": "http", "port": 9, "protocol": "TCP"}],
                     "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]})
        yield kube, tmp_path


def _run_gateway(kube: emulator.KubeEmulator, tmp: Any, *args: str) -> None:
    gateway = fake_upstreams.start_gateway(
        tmp, "--kubernetes", *args, "--api-keys-secret", f"{helm.NAMESPACE}/gw-keys",
        env={"KUBECONFIG": kube.kubeconfig, "LLMSERVER_GATEWAY_SECRET_REFRESH_SECONDS": "0.2"}, ready="/ready")
    try:
        request = urllib.request.Request(gateway.url + "/v1/models", headers={"Authorization": "Bearer sk-user"})
        deadline = time.monotonic() + 30
        while True:  # both models routed: LLMServers, slices and both Secrets were read
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    if sorted(m["id"] for m in yaml.safe_load(reply.read())["data"]) == ["ext", "tiny"]:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, gateway.output()[-3000:]
            time.sleep(0.2)
        time.sleep(1)  # a watch round after the lists
    finally:
        gateway.stop()


def test_gateway_rbac_single_namespace(gateway_world: Any, recorded: list[rbac.Request]) -> None:
    kube, tmp = gateway_world
    _run_gateway(kube, tmp, "--namespace", NS)
    values = {"operator": {"watchNamespaces": [NS]}, "gateway": {"auth": {"enabled": True, "existingSecret": "gw-keys"}},
              "apple": {"enabled": False}}
    granted = _check(recorded, values, "gateway")
    assert _unused(granted, recorded) == []
    assert {g.namespace for g in granted} == {NS, helm.NAMESPACE}
    keys = [g for g in granted if g.namespace == helm.NAMESPACE]
    assert keys == [rbac.Grant("get", "", "secrets", helm.NAMESPACE, ("gw-keys",))]  # only its own key Secret
    # With Macs on, the gateway also reads the Macs' runtime key Secrets in the agents' (release) namespace.
    with_macs = rbac.grants(helm.template({**values, "apple": {"enabled": True}}),
                            f"{helm.RELEASE}-llmserver-gateway", helm.NAMESPACE)
    assert {g for g in with_macs if g.namespace == helm.NAMESPACE} == {
        rbac.Grant("get", "", "secrets", helm.NAMESPACE, ("gw-keys",)), rbac.Grant("get", "", "secrets", helm.NAMESPACE, ())}
    verbs = collections.Counter(r.verb for r in recorded)
    assert verbs["get"] and verbs["list"] and verbs["watch"] and not {"create", "update", "patch", "delete"} & set(verbs)


def test_gateway_rbac_cluster_wide(gateway_world: Any, recorded: list[rbac.Request]) -> None:
    kube, tmp = gateway_world
    _run_gateway(kube, tmp)
    granted = _check(recorded, {"gateway": {"auth": {"enabled": True, "existingSecret": "gw-keys"}}}, "gateway")
    assert _unused(granted, recorded) == []
    assert all(g.verb in ("get", "list", "watch") for g in granted)
    assert {(g.resource, g.verb) for g in granted if g.resource == "secrets"} == {("secrets", "get")}  # never list
