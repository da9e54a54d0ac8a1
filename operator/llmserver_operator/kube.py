"""The operator's reads and writes of Kubernetes objects (kopf does the watching and its own patches).

Within the operator this is the only module that calls the API; the Mac agent reuses it. The
CLI, the gateway and the download reporter have their own small clients on the same `kubernetes`
library (docs/contracts.md, "Kubernetes clients"). Objects are plain dicts addressed through a
small kind table, sent with the official client's DynamicClient request path (auth, TLS and
retries of the `kubernetes` package) but without its discovery or ResourceInstance wrapping: the
operator knows its kinds, and dicts are what the pure builders produce and the status function reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import kubernetes.dynamic.exceptions

Manifest = dict[str, Any]
# (verb, resource, HTTP status or None without a response, seconds): how metrics see each request.
RequestObserver = Callable[[str, str, int | None, float], None]


@dataclasses.dataclass(frozen=True)
class Kind:
    """Where objects of one kind live in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, an object, or its subresource."""
        prefix = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        path = f"{prefix}/{self.plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path


KINDS: dict[str, Kind] = {
    kind.kind: kind
    for kind in (
        Kind("serving.llmserver.dev/v1alpha1", "LLMServer", "llmservers"),
        Kind("serving.llmserver.dev/v1alpha1", "AppleNode", "applenodes", namespaced=False),
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("batch/v1", "Job", "jobs"),
        Kind("v1", "Service", "services"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "ServiceAccount", "serviceaccounts"),
        Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
        Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
    )
}


class ApiError(Exception):
    """A failed API call; `status` is the HTTP status (404, 409, 422, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class _NoDiscovery:
    """Stands in for the DynamicClient's discoverer: paths come from KINDS, so no discovery calls."""

    def __init__(self, client: object, cache_file: object) -> None:
        del client, cache_file


def _plain(client: object, data: Any) -> Any:
    del client
    return data


def configuration(kubeconfig: str | None, pool_size: int) -> kubernetes.client.Configuration:
    """Client configuration from a kubeconfig file ($KUBECONFIG when None), else the in-cluster account."""
    config = kubernetes.client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        kubernetes.config.load_kube_config(config_file=path, client_configuration=config)
    else:
        kubernetes.config.load_incluster_config(client_configuration=config)
    config.connection_pool_maxsize = pool_size
    return config


def bearer_token(config: kubernetes.client.Configuration) -> str | None:
    """The bearer token a configuration sends (location differs across client versions)."""
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    return header.split(" ", 1)[-1] if header else None


class Kube:
    """Synchronous, thread-safe access to the objects the operator reads and writes."""

    def __init__(self, config: kubernetes.client.Configuration, observe: RequestObserver | None = None) -> None:
        self.config = config
        self._client = kubernetes.dynamic.DynamicClient(kubernetes.client.ApiClient(config), discoverer=_NoDiscovery)
        self._observe = observe

    def _call(self, verb: str, kind: Kind, method: str, path: str, body: Any = None, subresource: str | None = None,
              **params: Any) -> Any:
        started, code = time.perf_counter(), None
        try:
            response = self._client.request(method, path, body=body, serialize=False, **params)
            code = int(response.status)
            return json.loads(response.data) if response.data else None
        except kubernetes.dynamic.exceptions.DynamicApiError as exc:
            code = int(exc.status or 0)
            raise ApiError(code, str(exc.summary() if hasattr(exc, "summary") else exc)) from None
        finally:
            if self._observe is not None:
                resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
                self._observe(verb, resource, code, time.perf_counter() - started)

    def get(self, kind: str, namespace: str | None, name: str) -> Manifest | None:
        """One object, or None when it does not exist."""
        try:
            return self._call("get", KINDS[kind], "get", KINDS[kind].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, labels: Mapping[str, str] | None = None) -> list[Manifest]:
        """Objects of a kind matching every label given."""
        selector = ",".join(f"{key}={value}" for key, value in sorted((labels or {}).items())) or None
        result = self._call("list", KINDS[kind], "get", KINDS[kind].path(namespace), label_selector=selector)
        return list(result.get("items") or [])

    def create(self, obj: Manifest) -> Manifest:
        """POST; raises ApiError(409) when the name is taken."""
        meta, kind = obj["metadata"], KINDS[obj["kind"]]
        return self._call("create", kind, "post", kind.path(meta.get("namespace")), body=obj)

    def replace(self, obj: Manifest) -> Manifest:
        """PUT, guarded by the body's resourceVersion (409 when the object changed meanwhile)."""
        meta, kind = obj["metadata"], KINDS[obj["kind"]]
        return self._call("update", kind, "put", kind.path(meta.get("namespace"), meta["name"]), body=obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Deletes with background propagation; False when it was already gone."""
        try:
            self._call("delete", KINDS[kind], "delete", KINDS[kind].path(namespace, name),
                       body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def patch_status(self, kind: str, namespace: str | None, name: str, status: Manifest) -> Manifest:
        """Merge-patches the status subresource (null removes a field)."""
        return self._call("patch", KINDS[kind], "patch", KINDS[kind].path(namespace, name, "status"),
                          body={"status": status}, subresource="status", content_type="application/merge-patch+json")
