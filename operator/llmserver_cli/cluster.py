"""What the cluster-side commands share: the kubeconfig options, one API client, LLMServer
get/list/create/patch, and API errors turned into one readable line (never a traceback).

It lives beside `commands/`, not in it: it is a helper the command modules import, not a
subcommand. The CLI is short-lived and speaks to the cluster as a user (kubeconfig contexts,
typed per-verb errors), so it uses the official `kubernetes` client's typed APIs directly rather
than the operator's `kube.Kube`, which is built for the operator's own identity and kinds.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

import llmserver_api
from llmserver_api import llmserver as llmserver_model

F = TypeVar("F", bound=Callable[..., Any])


class ClusterError(click.ClickException):
    """A Kubernetes problem, said in one line (exit status 1)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """The kubeconfig, context and namespace a command works on."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None


def options(func: F) -> F:
    """Adds --kubeconfig, --context and -n/--namespace, passed as one `target: Target` argument."""

    @click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig file [default: $KUBECONFIG or ~/.kube/config].")
    @click.option("--context", help="Kubeconfig context [default: the current context].")
    @click.option("-n", "--namespace", help="Namespace [default: the context's namespace, else default].")
    @functools.wraps(func)
    def wrapper(*args: Any, kubeconfig: str | None, context: str | None, namespace: str | None, **kwargs: Any) -> Any:
        return func(*args, target=Target(kubeconfig, context, namespace), **kwargs)

    return wrapper  # type: ignore[return-value]


class Cluster:
    """LLMServer operations against the cluster a Target names."""

    def __init__(self, target: Target) -> None:
        import kubernetes  # imported here: `llmserver up` and `--help` never pay for it

        self._k8s = kubernetes
        try:
            self.api_client = kubernetes.config.new_client_from_config(
                config_file=target.kubeconfig, context=target.context, persist_config=False
            )
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=target.kubeconfig)
        except (kubernetes.config.ConfigException, OSError, TypeError) as error:
            raise ClusterError(
                f"no usable kubeconfig ({error}); pass --kubeconfig/--context, or use --local for local mode"
            ) from error
        chosen = next((c for c in contexts if c["name"] == target.context), active) if target.context else active
        self.namespace = target.namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.batch = kubernetes.client.BatchV1Api(self.api_client)

    def _call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except self._k8s.client.exceptions.ApiException as error:
            raise ClusterError(f"{what}: {api_message(error)}") from error
        except (OSError, self._k8s.client.exceptions.OpenApiException) as error:
            raise ClusterError(f"{what}: cannot reach the cluster ({error})") from error
        except Exception as error:  # urllib3 errors: connection refused, TLS, timeouts
            if type(error).__module__.startswith("urllib3"):
                raise ClusterError(f"{what}: cannot reach the cluster ({error})") from error
            raise

    def get(self, name: str) -> dict[str, Any] | None:
        """The LLMServer `name`, or None if it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(
                llmserver_api.GROUP, llmserver_api.VERSION, self.namespace, llmserver_model.PLURAL, name
            )
        except self._k8s.client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise ClusterError(f"reading LLMServer {self.namespace}/{name}: {api_message(error)}") from error

    def require(self, name: str) -> dict[str, Any]:
        """The LLMServer `name`; a clear error if it does not exist."""
        found = self.get(name)
        if found is None:
            raise ClusterError(f"LLMServer {name!r} not found in namespace {self.namespace!r}")
        return found

    def list(self, all_namespaces: bool = False) -> list[dict[str, Any]]:
        """Every LLMServer in the namespace (or in all namespaces)."""
        group, version, plural = llmserver_api.GROUP, llmserver_api.VERSION, llmserver_model.PLURAL
        if all_namespaces:
            result = self._call("listing LLMServers", self.custom.list_cluster_custom_object, group, version, plural)
        else:
            result = self._call(
                "listing LLMServers", self.custom.list_namespaced_custom_object, group, version, self.namespace, plural
            )
        return list(result.get("items", []))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates an LLMServer."""
        return self._call(
            f"creating LLMServer {self.namespace}/{body['metadata']['name']}",
            self.custom.create_namespaced_custom_object,
            llmserver_api.GROUP, llmserver_api.VERSION, self.namespace, llmserver_model.PLURAL, body,
        )  # fmt: skip

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Applies a JSON merge patch (RFC 7386: null deletes a key) to the LLMServer `name`."""
        return self._call(
            f"updating LLMServer {self.namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            llmserver_api.GROUP, llmserver_api.VERSION, self.namespace, llmserver_model.PLURAL, name, patch,
        )  # fmt: skip

    def delete(self, name: str) -> None:
        """Deletes the LLMServer `name` (its children follow through their ownerReferences)."""
        self._call(
            f"deleting LLMServer {self.namespace}/{name}",
            self.custom.delete_namespaced_custom_object,
            llmserver_api.GROUP, llmserver_api.VERSION, self.namespace, llmserver_model.PLURAL, name,
        )  # fmt: skip

    def claim_exists(self, name: str) -> bool:
        """Whether the PersistentVolumeClaim `name` exists in the namespace."""
        core = self._k8s.client.CoreV1Api(self.api_client)
        try:
            core.read_namespaced_persistent_volume_claim(name, self.namespace)
        except self._k8s.client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise ClusterError(f"reading PVC {self.namespace}/{name}: {api_message(error)}") from error
        return True

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates a batch/v1 Job from a manifest dict."""
        created = self._call(
            f"creating Job {self.namespace}/{body['metadata'].get('name', '')}",
            self.batch.create_namespaced_job, self.namespace, body,
        )  # fmt: skip
        return self.api_client.sanitize_for_serialization(created)


def api_message(error: Any) -> str:
    """The API server's own message (a Status object's `message`), else the HTTP reason."""
    try:
        body = json.loads(error.body or "{}")
        message = body.get("message") if isinstance(body, dict) else None
    except (TypeError, ValueError):
        message = None
    return f"{message or error.reason} (HTTP {error.status})"


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (keys only in `old` become null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch
