"""Starting a reconcile of one LLMServer, from any handler, with retries that always happen.

Every path (the LLMServer's own create/update/resume, a child's event, a Mac's change, a retry
timer) goes through `reconcile`: one pass at a time per server (server_locks), failures retried
with backoff (retries), and nothing raised back into kopf, so kopf writes no progress annotations
and posts no event per attempt. A pass that fails is logged on the module logger only.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import kopf

from llmserver_operator import kube as kube_mod

LOG = logging.getLogger(__name__)


def reconcile(memo: kopf.Memo, namespace: str, name: str, coalesce: bool) -> None:
    """Runs one pass (or joins a pending one when `coalesce`) and schedules what comes next."""
    key = (namespace, name)

    def again() -> None:
        reconcile(memo, namespace, name, coalesce=True)

    try:
        outcome = memo.server_locks.run(key, lambda: memo.reconciler.reconcile(namespace, name), coalesce=coalesce)
    except Exception as exc:  # noqa: BLE001 - API errors, lost races, no answer, or a bug: all retried
        at_least = exc.retry_after if isinstance(exc, kube_mod.ApiError) else None
        delay = memo.retries.failed(key, again, at_least)
        level = logging.WARNING if memo.retries.failures(key) == 1 else logging.INFO
        LOG.log(level, f"reconcile of {namespace}/{name} failed ({exc.__class__.__name__}: {exc}); retry in {delay:.1f}s",
                exc_info=not isinstance(exc, kube_mod.ApiError))
        return
    if outcome is None:
        return  # coalesced: the pass already waiting will see the latest state and decide
    if outcome.problem is not None:  # reached status as a condition; keep trying with backoff
        delay = memo.retries.failed(key, again)
        LOG.info(f"{namespace}/{name}: {outcome.problem}; retry in {delay:.1f}s")
    elif outcome.retry_after is not None:
        memo.retries.waiting(key, again, outcome.retry_after)
    else:
        memo.retries.succeeded(key)


def essence(body: Mapping[str, Any]) -> Hashable:
    """What of an LLMServer a pass depends on besides its status: spec (by generation), labels,
    annotations, deletion. Two events with the same essence need one pass, not two."""
    meta = body.get("metadata") or {}
    return (meta.get("uid"), meta.get("generation"), bool(meta.get("deletionTimestamp")),
            tuple(sorted((meta.get("labels") or {}).items())), tuple(sorted((meta.get("annotations") or {}).items())))
