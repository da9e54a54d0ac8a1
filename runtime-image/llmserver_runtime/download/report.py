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
    """Patches status.download of one LLMServer."""

    def __init__(self, namespace: str, name: str) -> None:
        import kubernetes

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # KUBECONFIG, or ~/.kube/config
        self._api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
        self._namespace = namespace
        self._name = name
        self._failed_once = False

    def patch(self, body: dict[str, Any]) -> None:
        """Merge-patches the status subresource; logs (once) instead of raising."""
        try:
            self._api.patch_namespaced_custom_object_status(
                api_common.GROUP, api_common.VERSION, self._namespace, api_llmserver.PLURAL, self._name, body
            )
        except Exception as exc:  # noqa: BLE001 - progress must never fail the download
            if not self._failed_once:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                log.warning("cannot report progress to LLMServer %s/%s: %s", self._namespace, self._name, reason)
                self._failed_once = True

    def __call__(self, snapshot: progress.Snapshot) -> None:
        self.patch(snapshot.status_patch())
