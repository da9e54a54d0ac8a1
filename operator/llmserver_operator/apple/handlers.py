"""kopf handlers for Macs: Lease-driven AppleNode readiness, and re-placement when a Mac changes.

A timer checks each AppleNode's Lease; the condition it writes (or the agent's own status updates:
a model turned Ready on some port) is an AppleNode event, which re-runs the reconcile of every
Apple-placed LLMServer, so placement, the EndpointSlice and the server's status follow the Mac.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

import llmserver_api

from llmserver_operator import kube as kube_mod
from llmserver_operator import triggers
from llmserver_operator.builders import plan


def _apple_servers(kube: kube_mod.Kube) -> list[tuple[str, str]]:
    """(namespace, name) of every LLMServer that is, or wants to be, on a Mac."""
    found = []
    for raw in kube.list("LLMServer", None):
        try:
            server = llmserver_api.LLMServer.model_validate(raw)
        except ValueError:
            continue
        if plan.placement(server.spec) == plan.Placement.APPLE:
            found.append((raw["metadata"].get("namespace") or "default", raw["metadata"]["name"]))
    return sorted(found)


def register(registry: kopf.OperatorRegistry, lease_check_seconds: float = 5.0) -> None:
    """Attaches the AppleNode handlers to `registry`."""

    @kopf.timer(llmserver_api.GROUP, llmserver_api.VERSION, "applenodes", interval=lease_check_seconds,
                registry=registry, id="applenode-lease")
    def check_lease(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        try:
            if memo.reconciler.apple.refresh_node(dict(body)):
                logger.info(f"AppleNode {body.metadata.name} readiness changed")
        except kube_mod.ApiError as exc:
            raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=lease_check_seconds) from None

    @kopf.on.event(llmserver_api.GROUP, llmserver_api.VERSION, "applenodes", registry=registry,
                   id="applenode-changed")
    def node_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in body.status.get("conditions") or [])
        memo.metrics.apple_node(body.metadata.name, None if type == "DELETED" else ready)
        if type is None:
            return  # initial listing: every LLMServer is resumed anyway
        for namespace, name in _apple_servers(memo.reconciler.kube):
            triggers.reconcile(memo, namespace, name, coalesce=True)  # never raises: failures are retried
