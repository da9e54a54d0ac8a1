"""The chart's user ClusterRoles: aggregated into admin/edit/view, so namespace users can manage and
`kubectl scale` LLMServers (edit) or read them (view), and nothing more."""

from __future__ import annotations

from typing import Any

import pytest
from testkit import helm, rbac

pytestmark = pytest.mark.timeout(120)
LLMS = "serving.llmserver.dev"


def _bound_in_namespace(objects: list[dict[str, Any]], role: str) -> set[rbac.Grant]:
    """What a user in namespace `team` gets when a RoleBinding there names the ClusterRole (as the
    aggregated built-in roles do)."""
    binding = {"kind": "RoleBinding", "metadata": {"name": "u", "namespace": "team"},
               "roleRef": {"kind": "ClusterRole", "name": role, "apiGroup": "rbac.authorization.k8s.io"},
               "subjects": [{"kind": "ServiceAccount", "name": "user", "namespace": "team"}]}
    return rbac.grants([*objects, binding], "user", "team")


def test_edit_manages_and_scales_view_only_reads(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["default"]
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    edit, view = f"{helm.RELEASE}-llmserver-edit", f"{helm.RELEASE}-llmserver-view"
    assert roles[edit]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert roles[edit]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert roles[view]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"

    editor = _bound_in_namespace(objects, edit)
    for verb, resource in (("create", "llmservers"), ("patch", "llmservers/scale"), ("update", "llmservers/scale"),
                           ("get", "llmservers/scale"), ("delete", "llmservers")):
        assert rbac.allowed(rbac.Request(verb, LLMS, resource, "team", "q"), editor), (verb, resource)
    assert not rbac.allowed(rbac.Request("patch", LLMS, "llmservers/status", "team", "q"), editor)  # the operator's
    assert not rbac.allowed(rbac.Request("create", LLMS, "llmservers", "other", None), editor)  # bound in team only
    assert not rbac.allowed(rbac.Request("update", LLMS, "applenodes", None, "mac"), editor)

    viewer = _bound_in_namespace(objects, view)
    assert rbac.allowed(rbac.Request("list", LLMS, "llmservers", "team", None), viewer)
    assert not rbac.allowed(rbac.Request("patch", LLMS, "llmservers/scale", "team", "q"), viewer)


def test_user_roles_can_be_turned_off() -> None:
    objects = helm.template({"userRoles": {"enabled": False}})
    assert not [o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith(("-edit", "-view"))]
