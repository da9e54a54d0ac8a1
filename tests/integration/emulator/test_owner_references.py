"""Opt-in OwnerReferencesPermissionEnforcement: blockOwnerDeletion needs update on the owner's finalizers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import emulator, emulator_admission
from testkit.emulator_client import call, configmap, owner_ref

pytestmark = pytest.mark.timeout(60)
OPERATOR = "system:serviceaccount:ops:operator"
CHILDREN = "/api/v1/namespaces/team/configmaps"


@pytest.fixture(scope="module")
def enforcing() -> Iterator[emulator.KubeEmulator]:
    policy = emulator_admission.OwnerReferencesEnforcement(
        users={"op-token": OPERATOR, "friend-token": "friend"},
        allowed=[("friend", "*", "*", "*")], rbac=True)
    with emulator.KubeEmulator(owner_references=policy) as server:
        yield server


def grant(kube: emulator.KubeEmulator, resources: list[str], verbs: list[str]) -> None:
    name = "-".join(r.replace("/", "-") for r in resources) + "-" + "-".join(verbs)
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": "team"},
                 "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]})
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": name, "namespace": "team"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                 "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "ops"}]})


def test_blocking_owner_references_need_finalizers_update_on_the_owner(enforcing: emulator.KubeEmulator) -> None:
    owner = enforcing.create(configmap("owner", namespace="team"))
    plain = call(enforcing, "POST", CHILDREN, configmap("a", ownerReferences=[owner_ref(owner)]), token="op-token")
    assert plain.code == 403 and "can't delete" in plain.body["message"]  # setting any ownerRef needs delete
    grant(enforcing, ["configmaps"], ["delete"])
    assert call(enforcing, "POST", CHILDREN, configmap("a", ownerReferences=[owner_ref(owner)]), token="op-token").code == 201
    blocking = call(enforcing, "POST", CHILDREN, configmap("b", ownerReferences=[owner_ref(owner, block=True)]),
                    token="op-token")
    assert blocking.code == 403 and '"configmaps/finalizers"' in blocking.body["message"]
    grant(enforcing, ["configmaps/finalizers"], ["update"])
    assert call(enforcing, "POST", CHILDREN, configmap("b", ownerReferences=[owner_ref(owner, block=True)]),
                token="op-token").code == 201


def test_the_allow_list_and_direct_writes_pass(enforcing: emulator.KubeEmulator) -> None:
    owner = enforcing.create(configmap("owner2", namespace="team"))
    body = configmap("c", ownerReferences=[owner_ref(owner, block=True)])
    assert call(enforcing, "POST", CHILDREN, body, token="friend-token").code == 201
    assert call(enforcing, "POST", CHILDREN, configmap("d", ownerReferences=[owner_ref(owner, block=True)])).code == 403
    enforcing.create(configmap("e", namespace="team", ownerReferences=[owner_ref(owner, block=True)]))  # no caller: trusted


def test_it_is_off_by_default(kube: emulator.KubeEmulator) -> None:
    owner = kube.create(configmap("owner", namespace="o1"))
    body = configmap("x", ownerReferences=[owner_ref(owner, block=True)])
    assert call(kube, "POST", "/api/v1/namespaces/o1/configmaps", body, token="anyone").code == 201
