"""The chart's RBAC for what the main audit cannot record: leader election, and the
OwnerReferencesPermissionEnforcement admission check (OpenShift), which is not a request at all.

Leader election: two real electors take, renew, release and take over the chart's Lease; every
request must be allowed by the chart and every leader grant used. Admission: the emulator enforces
ownerReference permissions against the chart's own Roles (loaded into it), and the real operator,
authenticated as the chart's ServiceAccount, must still bring a server to Ready: kopf.adopt sets
blockOwnerDeletion on every child, which needs `update llmservers/finalizers`.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmserver_operator import kube as kube_mod
from llmserver_operator import leader
from testkit import emulator, emulator_admission, helm, kubelet, operator_thread, rbac

pytestmark = pytest.mark.timeout(180)
OPERATOR = f"{helm.RELEASE}-llmserver-operator"
NS = "ml"
LEADER = {("create", "coordination.k8s.io", "leases"), ("get", "coordination.k8s.io", "leases"),
          ("update", "coordination.k8s.io", "leases")}


def test_leader_election_needs_only_what_the_chart_grants(recorded: list[rbac.Request]) -> None:
    objects = helm.template({})
    env = helm.container_env(helm.one(objects, "Deployment", "-operator"))
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        kube = kube_mod.Kube(kube_mod.configuration(server.kubeconfig, pool_size=2))

        def elector(identity: str) -> leader.LeaderElector:
            return leader.LeaderElector(kube, leader.Election(
                namespace=env["LLMSERVER_OPERATOR_LEADER_ELECTION_NAMESPACE"],
                name=env["LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_NAME"], identity=identity))

        first, second = elector("a"), elector("b")
        assert first.try_acquire_or_renew() and first.try_acquire_or_renew()  # create, then renew
        assert not second.try_acquire_or_renew()  # held
        first.release()
        assert second.try_acquire_or_renew()  # a released Lease is taken at once
    granted = rbac.grants(objects, OPERATOR, helm.NAMESPACE)
    denied = sorted({str(r) for r in recorded if not rbac.allowed(r, granted)})
    assert denied == [], denied
    leader_grants = {g for g in granted if (g.verb, g.group, g.resource) in LEADER and g.namespace == helm.NAMESPACE}
    unused = sorted(str(g) for g in leader_grants if not rbac.used(g, recorded))
    assert unused == [], unused


def _load_chart_rbac(server: emulator.KubeEmulator, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            server.create(obj)


def test_the_operator_may_block_owner_deletion_under_admission_enforcement(tmp_path: Any) -> None:
    account = f"system:serviceaccount:{helm.NAMESPACE}:{OPERATOR}"
    policy = emulator_admission.OwnerReferencesEnforcement(users={"emulator": account}, rbac=True)
    with emulator.KubeEmulator(crds=emulator.project_crds(), owner_references=policy) as server:
        _load_chart_rbac(server, helm.template({"operator": {"watchNamespaces": [NS]}, "apple": {"enabled": False}}))
        cell = kubelet.Kubelet(server).start()
        try:
            with operator_thread.OperatorThread(server.kubeconfig, namespaces=[NS], apple_enabled=False,
                                                retry_delay_seconds=0.5):
                server.create({"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
                               "metadata": {"name": "tiny", "namespace": NS},
                               "spec": {"model": "tiny", "backend": "llama-cpp",
                                        "source": {"huggingFace": {"repo": "acme/tiny-GGUF", "file": "tiny.gguf"}}}})

                def phase() -> str | None:
                    obj = server.get("serving.llmserver.dev/v1alpha1", "LLMServer", "tiny", NS) or {}
                    return (obj.get("status") or {}).get("phase")

                server.wait_for(lambda: phase() == "Ready", 90, "tiny Ready under OwnerReferencesPermissionEnforcement")
            deployment = server.get("apps/v1", "Deployment", "tiny", NS) or {}
            assert any(ref.get("blockOwnerDeletion") for ref in deployment["metadata"]["ownerReferences"])
        finally:
            cell.stop()
