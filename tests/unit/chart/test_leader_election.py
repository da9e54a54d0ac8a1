"""The chart's leader election: on by default, the Lease the operator renews is the one its RBAC
names, several replicas are refused without it, and updates roll only with it."""

from __future__ import annotations

from typing import Any

from testkit import helm, rbac

OPERATOR = f"{helm.RELEASE}-llmserver-operator"


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(objects, "Deployment", "-operator")


def test_replicas_roll_and_hold_exactly_their_own_lease(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["replicas"]
    deployment = _deployment(objects)
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = helm.container_env(deployment)
    assert env["LLMSERVER_OPERATOR_LEADER_ELECTION"] == "true"
    lease, namespace = env["LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_NAME"], env["LLMSERVER_OPERATOR_LEADER_ELECTION_NAMESPACE"]
    granted = rbac.grants(objects, OPERATOR, helm.NAMESPACE)
    for verb in ("get", "update"):
        assert rbac.allowed(rbac.Request(verb, "coordination.k8s.io", "leases", namespace, lease), granted)
    # no Mac's heartbeat Lease (those are read, by the Mac code, never written)
    assert not rbac.allowed(rbac.Request("update", "coordination.k8s.io", "leases", namespace, "applenode-m1"), granted)
    assert rbac.allowed(rbac.Request("create", "coordination.k8s.io", "leases", namespace, None), granted)
    assert not rbac.allowed(rbac.Request("create", "coordination.k8s.io", "leases", "team-a", None), granted)


def test_without_leader_election_one_replica_is_recreated(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["single-operator"]
    assert _deployment(objects)["spec"]["strategy"]["type"] == "Recreate"
    assert "LLMSERVER_OPERATOR_LEADER_ELECTION" not in helm.container_env(_deployment(objects))
    granted = rbac.grants(objects, OPERATOR, helm.NAMESPACE)
    assert not rbac.allowed(rbac.Request("create", "coordination.k8s.io", "leases", helm.NAMESPACE, None), granted)


def test_several_replicas_need_leader_election_and_sane_timings() -> None:
    error = helm.template_error({"operator": {"replicas": 2, "leaderElection": {"enabled": False}}})
    assert "more than one replica needs operator.leaderElection.enabled" in error
    error = helm.template_error({"operator": {"leaderElection": {"renewDeadline": 15}}})
    assert "retryPeriod < renewDeadline < leaseDuration" in error


def test_operator_may_block_owner_deletion_of_its_servers(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """OwnerReferencesPermissionEnforcement (OpenShift): blockOwnerDeletion on a child's ownerReference
    needs update on the owner's finalizers; kopf.adopt sets it on every child."""
    for name in ("default", "namespaced"):
        granted = rbac.grants(rendered[name], OPERATOR, helm.NAMESPACE)
        namespace = "team-a" if name == "namespaced" else "ml"
        assert rbac.allowed(rbac.Request("update", "serving.llmserver.dev", "llmservers/finalizers", namespace, "x"),
                            granted)
