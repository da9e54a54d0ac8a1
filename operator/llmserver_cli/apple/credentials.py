"""What `llmserver agent-credentials NODE` does with an admin's kubeconfig: creates the Mac's own
identity (llmserver_operator.apple.identity), asks a first token for it (TokenRequest) and writes
the kubeconfig the Mac's agent runs with. The agent refreshes that token itself (token_refresh)."""

from __future__ import annotations

import base64
import pathlib
from collections.abc import Callable
from typing import Any

import yaml

from llmserver_operator.apple import identity

Manifest = dict[str, Any]
PLURALS = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
           "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Secret": "secrets",
           "Lease": "leases", "AppleNode": "applenodes"}
Call = Callable[[str, str, Manifest | None], Manifest]  # (method, path, body) -> response; raises ApiException


def object_path(obj: Manifest, named: bool) -> str:
    """The REST path of `obj`'s collection (named=False) or of `obj` itself."""
    version = obj["apiVersion"]
    prefix = f"/api/{version}" if "/" not in version else f"/apis/{version}"
    namespace = obj["metadata"].get("namespace")
    if namespace:
        prefix += f"/namespaces/{namespace}"
    path = f"{prefix}/{PLURALS[obj['kind']]}"
    return f"{path}/{obj['metadata']['name']}" if named else path


def apply(call: Call, obj: Manifest, replace: bool, not_found: type[Exception], status_of: Callable[[Exception], int]) -> str:
    """Creates `obj`; when it exists, replaces it (`replace`) or leaves it. Says which happened."""
    try:
        current = call("GET", object_path(obj, named=True), None)
    except not_found as exc:
        if status_of(exc) != 404:
            raise
        call("POST", object_path(obj, named=False), obj)
        return "created"
    if not replace:
        return "kept"
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    call("PUT", object_path(obj, named=True), body)
    return "updated"


def provision(call: Call, node: str, namespace: str, address: str, not_found: type[Exception],
              status_of: Callable[[Exception], int]) -> list[str]:
    """The node's account and RBAC (replaced) and its AppleNode, Lease and key Secret (created
    when missing); one line per object."""
    lines = []
    for obj in identity.build_access(node, namespace):
        lines.append(f"{obj['kind']} {obj['metadata']['name']}: {apply(call, obj, True, not_found, status_of)}")
    for obj in identity.build_registration(node, namespace, address):
        lines.append(f"{obj['kind']} {obj['metadata']['name']}: {apply(call, obj, False, not_found, status_of)}")
    return lines


def build_kubeconfig(server: str, ca_pem: bytes | None, insecure: bool, node: str, namespace: str, token: str) -> Manifest:
    """A kubeconfig for one Mac: the cluster, the node's token, the agents' namespace."""
    cluster: Manifest = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    user = identity.account_name(node)
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "llmserver", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "llmserver", "user": user, "namespace": namespace}}],
    }


def write_private(path: pathlib.Path, kubeconfig: Manifest) -> None:
    """Writes the kubeconfig readable by its owner only (it holds a token)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
