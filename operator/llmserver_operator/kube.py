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
import urllib3.exceptions

from llmserver_operator import watch_cache

Manifest = dict[str, Any]
# (verb, resource, HTTP status or None without a response, seconds): how metrics see each request.
RequestObserver = Callable[[str, str, int | None, float], None]
# (connect, read) seconds: a hung API server or a dropped connection fails the call instead of
# blocking a worker thread forever; the caller's retry with backoff takes over.
REQUEST_TIMEOUT = (5.0, 30.0)


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
        Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "ServiceAccount", "serviceaccounts"),
        Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
        Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
        Kind("v1", "Event", "events"),
    )
}


class ApiError(Exception):
    """A failed API call; `status` is the HTTP status (404, 409, 422, ...), 0 without a response.

    `retry_after` is the server's Retry-After (429, 503) in seconds, when it sent one.
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class TransportError(ApiError):
    """No answer: connection refused or reset, or a timeout. Always worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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


def _message(exc: kubernetes.client.exceptions.ApiException) -> str:
    """The Status object's message when the body is one (a 422 names the invalid field), else the reason."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "no message")


class Kube:
    """Synchronous, thread-safe access to the objects the operator reads and writes."""

    def __init__(self, config: kubernetes.client.Configuration, observe: RequestObserver | None = None,
                 timeout: tuple[float, float] = REQUEST_TIMEOUT, cache: watch_cache.WatchCache | None = None) -> None:
        self.config = config
        self.cache = cache  # what the watches saw; our writes' answers go into it too (write-through)
        self._client = kubernetes.dynamic.DynamicClient(kubernetes.client.ApiClient(config), discoverer=_NoDiscovery)
        self._observe = observe
        self.timeout = timeout

    def _call(self, verb: str, kind: Kind, method: str, path: str, body: Any = None, subresource: str | None = None,
              **params: Any) -> Any:
        started, code = time.perf_counter(), None
        try:
            response = self._client.request(method, path, body=body, serialize=False, _request_timeout=self.timeout,
                                            **params)
            code = int(response.status)
            return json.loads(response.data) if response.data else None
        except kubernetes.client.exceptions.ApiException as exc:  # DynamicApiError is one of these
            code = int(exc.status or 0)
            raise ApiError(code, _message(exc), _retry_after(exc.headers)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # no answer: refused, reset, timed out
            raise TransportError(f"{exc.__class__.__name__}: {exc}") from None
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
        return self._written(self._call("create", kind, "post", kind.path(meta.get("namespace")), body=obj))

    def replace(self, obj: Manifest) -> Manifest:
        """PUT, guarded by the body's resourceVersion (409 when the object changed meanwhile)."""
        meta, kind = obj["metadata"], KINDS[obj["kind"]]
        return self._written(self._call("update", kind, "put", kind.path(meta.get("namespace"), meta["name"]), body=obj))

    def delete(self, kind: str, namespace: str | None, name: str, uid: str | None = None) -> bool:
        """Deletes with background propagation; False when it was already gone. With `uid`, only
        that very object (a precondition): never a newer one that took its name meanwhile."""
        body: Manifest = {"propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("delete", KINDS[kind], "delete", KINDS[kind].path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404:
                self._deleted(kind, namespace, name, uid)
            if exc.status == 404 or (uid is not None and exc.status == 409):
                return False
            raise
        self._deleted(kind, namespace, name, uid)
        return True

    def _deleted(self, kind: str, namespace: str | None, name: str, uid: str | None) -> None:
        if self.cache is not None:
            self.cache.forget({"kind": kind, "metadata": {"namespace": namespace or "", "name": name, "uid": uid}})

    def patch_status(self, kind: str, namespace: str | None, name: str, status: Manifest) -> Manifest:
        """Merge-patches the status subresource (null removes a field)."""
        return self._written(self._call("patch", KINDS[kind], "patch", KINDS[kind].path(namespace, name, "status"),
                                        body={"status": status}, subresource="status",
                                        content_type="application/merge-patch+json"))

    def patch_scale(self, kind: str, namespace: str | None, name: str, replicas: int) -> Manifest:
        """Merge-patches the scale subresource's spec.replicas (what `kubectl scale` does); returns the Scale."""
        return self._call("patch", KINDS[kind], "patch", KINDS[kind].path(namespace, name, "scale"),
                          body={"spec": {"replicas": replicas}}, subresource="scale",
                          content_type="application/merge-patch+json")

    def _written(self, answer: Manifest) -> Manifest:
        """The API's answer to a write, kept in the cache so the next pass reads at least this version."""
        if self.cache is not None and isinstance(answer, dict):
            self.cache.store(answer)
        return answer
