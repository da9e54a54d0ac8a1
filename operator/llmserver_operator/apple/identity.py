"""Pure builders of each Mac's own identity: one ServiceAccount per AppleNode, and RBAC that names
only that node's objects, so a Mac's token cannot read another Mac's key or the gateway's keys,
nor rewrite another AppleNode (docs/apple.md, "One identity per Mac").

Kubernetes cannot narrow `create` by name (the name is not known when a create is authorized), so
the objects a Mac writes are created beforehand by `llmserver agent-credentials NODE` (an admin
command) and the agent only gets and updates them by name:

- in the agents' namespace: ServiceAccount, Role and RoleBinding `applenode-<node>`, the Lease
  `applenode-<node>`, the key Secret `applenode-<node>-key`; the Role also lets the account
  request tokens for itself (`serviceaccounts/token`), which is how the agent refreshes its token;
- cluster-wide: ClusterRole and ClusterRoleBinding `llmserver-applenode-<node>` for its own
  AppleNode (and its status) and `list` on LLMServers (a list cannot be narrowed by name; it shows
  specs and statuses, never Secret values);
- per placed server: the operator adds a Role and RoleBinding `<server>-apple-agent` in the
  server's namespace that let the node it is placed on patch that one server's status (download
  progress, status.adapters); it follows the server when it moves and goes with it (owner reference).
"""

from __future__ import annotations

from typing import Any

import llmserver_api

from llmserver_operator.apple import leases, publishing
from llmserver_operator.builders import common

Manifest = dict[str, Any]
RBAC = "rbac.authorization.k8s.io/v1"
MANAGED_BY = "llmserver-agent-credentials"
PLACEHOLDER_MEMORY = "0"  # a pre-registered node has no memory until its agent registers it


def account_name(node: str) -> str:
    """The ServiceAccount (and Role, RoleBinding) of one Mac in the agents' namespace."""
    return f"applenode-{node}"


def cluster_role_name(node: str) -> str:
    """The ClusterRole (and ClusterRoleBinding) of one Mac."""
    return f"llmserver-applenode-{node}"


def status_grant_name(server: llmserver_api.LLMServer) -> str:
    """The Role and RoleBinding letting the server's Mac patch its status."""
    return f"{common.name_of(server)}-apple-agent"


def _labels(node: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "llmserver-apple-agent",
            publishing.NODE_LABEL: node}


def _subject(node: str, namespace: str) -> list[Manifest]:
    return [{"kind": "ServiceAccount", "name": account_name(node), "namespace": namespace}]


def node_rules(node: str) -> list[Manifest]:
    """The ClusterRole rules: its own AppleNode by name, and listing LLMServers."""
    return [
        {"apiGroups": [llmserver_api.GROUP], "resources": ["applenodes"], "resourceNames": [node],
         "verbs": ["get", "update"]},
        {"apiGroups": [llmserver_api.GROUP], "resources": ["applenodes/status"], "resourceNames": [node],
         "verbs": ["patch"]},
        {"apiGroups": [llmserver_api.GROUP], "resources": ["llmservers"], "verbs": ["list"]},
    ]


def namespace_rules(node: str) -> list[Manifest]:
    """The Role rules in the agents' namespace: its Lease, its key Secret, tokens for itself."""
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [leases.lease_name(node)],
         "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [publishing.key_secret_name(node)],
         "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [account_name(node)],
         "verbs": ["create"]},
    ]


def build_access(node: str, namespace: str) -> list[Manifest]:
    """The node's account and RBAC, in apply order (replaced as a whole when they exist)."""
    meta = {"name": account_name(node), "namespace": namespace, "labels": _labels(node)}
    cluster_meta = {"name": cluster_role_name(node), "labels": _labels(node)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta), "automountServiceAccountToken": False},
        {"apiVersion": RBAC, "kind": "Role", "metadata": dict(meta), "rules": namespace_rules(node)},
        {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": dict(meta), "subjects": _subject(node, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account_name(node)}},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": dict(cluster_meta), "rules": node_rules(node)},
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": dict(cluster_meta),
         "subjects": _subject(node, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name(node)}},
    ]


def build_registration(node: str, namespace: str, address: str, lease_seconds: int = 15) -> list[Manifest]:
    """The objects the agent updates but may not create: created only when missing, never
    replaced (the agent owns their content once it runs). The AppleNode is a placeholder: NotReady
    (its Lease was never renewed) with no memory, until the agent registers the Mac for real."""
    labels = _labels(node)
    return [
        {"apiVersion": llmserver_api.API_VERSION, "kind": "AppleNode", "metadata": {"name": node, "labels": labels},
         "spec": {"address": address, "unifiedMemory": PLACEHOLDER_MEMORY}},
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": leases.lease_name(node), "namespace": namespace, "labels": labels},
         "spec": {"holderIdentity": node, "leaseDurationSeconds": lease_seconds}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": publishing.key_secret_name(node), "namespace": namespace, "labels": labels}},
    ]


def build_status_role(server: llmserver_api.LLMServer) -> Manifest:
    """Role `<server>-apple-agent`: patch this one server's status (download progress, adapters)."""
    return {
        "apiVersion": RBAC, "kind": "Role",
        "metadata": common.metadata(server, status_grant_name(server), "apple-agent"),
        "rules": [{"apiGroups": [llmserver_api.GROUP], "resources": ["llmservers/status"],
                   "resourceNames": [common.name_of(server)], "verbs": ["patch"]}],
    }


def build_status_binding(server: llmserver_api.LLMServer, node: str, agent_namespace: str) -> Manifest:
    """RoleBinding `<server>-apple-agent` to the account of the Mac the server is placed on."""
    return {
        "apiVersion": RBAC, "kind": "RoleBinding",
        "metadata": common.metadata(server, status_grant_name(server), "apple-agent"),
        "subjects": _subject(node, agent_namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": status_grant_name(server)},
    }
