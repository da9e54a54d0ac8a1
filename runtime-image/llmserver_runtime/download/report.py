"""Reports download progress into the LLMServer's status with the official Kubernetes client.

The download pod's ServiceAccount may only get/patch this one LLMServer's status subresource
(operator builders), so this sends a merge patch to `.../llmservers/NAME/status` and nothing else.
Reporting is best effort: a failed patch is logged once and never fails the download.
"""

from __future__ import annotations

import logging
from typing import Any

from llmserver_api import common as api_common
from llmserver_api import llmserver as api_llmserver

from llmserver_runtime.download import progress

log = logging.getLogger(__name__)


def parse_target(value: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` -> (namespace, name); a clear error otherwise."""
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"--report-to must be NAMESPACE/NAME, not {value!r}")
    return namespace, name


class StatusReporter:
    """Patches status.download of one LLMServer, or with `adapter` the `download` of its
    status.adapters entry of that name (a JSON patch guarded by a `test` of the entry's name: the
    list is the operator's, and a merge patch would replace all of it)."""

    def __init__(self, namespace: str, name: str, adapter: str | None = None) -> None:
        import kubernetes

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # KUBECONFIG, or ~/.kube/config
        self._api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
        self._namespace = namespace
        self._name = name
        self._adapter = adapter
        self._failed_once = False

    def patch(self, body: dict[str, Any]) -> None:
        """Merge-patches the status subresource; logs (once) instead of raising."""
        try:
            if self._adapter is not None:
                self._patch_adapter(body["status"]["download"])
                return
            self._api.patch_namespaced_custom_object_status(
                api_common.GROUP, api_common.VERSION, self._namespace, api_llmserver.PLURAL, self._name, body
            )
        except Exception as exc:  # noqa: BLE001 - progress must never fail the download
            if not self._failed_once:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                log.warning("cannot report progress to LLMServer %s/%s: %s", self._namespace, self._name, reason)
                self._failed_once = True

    def _patch_adapter(self, download: dict[str, Any]) -> None:
        """Writes the adapter entry's download; nothing while the operator has not listed it yet."""
        current = self._api.get_namespaced_custom_object_status(
            api_common.GROUP, api_common.VERSION, self._namespace, api_llmserver.PLURAL, self._name
        )
        entries = (current.get("status") or {}).get("adapters") or []
        index = next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("name") == self._adapter), None)
        if index is None:
            return  # the next report finds it
        ops = [{"op": "test", "path": f"/status/adapters/{index}/name", "value": self._adapter},
               {"op": "add", "path": f"/status/adapters/{index}/download",
                "value": {**(entries[index].get("download") or {}), **download}}]  # as a merge patch would
        self._api.patch_namespaced_custom_object_status(
            api_common.GROUP, api_common.VERSION, self._namespace, api_llmserver.PLURAL, self._name, ops,
            _content_type="application/json-patch+json",
        )

    def __call__(self, snapshot: progress.Snapshot) -> None:
        self.patch(snapshot.status_patch())
