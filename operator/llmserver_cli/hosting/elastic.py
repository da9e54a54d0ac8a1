"""spec.autoscaling on one host (local mode, a Mac), where a server has one runtime or none: pure
rules the engine and its adapters share.

In a cluster the operator's autoscaler moves spec.replicas; on one host there is nothing to add,
so only the way to zero and back matters:
- local mode (`scale_to_zero=True`): with minReplicas 0 the model unloads after
  scaleDownDelaySeconds without requests and is reloaded by the next one (the gateway holds it);
  with minReplicas >= 1 it never unloads for idleness.
- a Mac (`scale_to_zero=False`): the operator's autoscaler owns spec.replicas (0 or 1 on a Mac), so
  the agent never unloads an autoscaled server on its own idle timer; spec.replicas decides.
Servers without spec.autoscaling keep the host's own idle setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import llmserver_api
from llmserver_api import elastic

if TYPE_CHECKING:
    from llmserver_cli.hosting import hosted


def autoscaling(server: llmserver_api.LLMServer) -> elastic.Autoscaling | None:
    """The server's autoscaling block, or None (not autoscaled; Proxy servers never are)."""
    if server.spec.mode != llmserver_api.Mode.SELF_HOSTED:
        return None
    return server.spec.autoscaling


def idle_limit(server: llmserver_api.LLMServer, host_default: float, scale_to_zero: bool) -> float | None:
    """Seconds without requests after which the server is unloaded; None: never for idleness.

    `host_default` is the host's own idle setting (0 = never), used for servers that are not autoscaled.
    """
    block = autoscaling(server)
    if block is None:
        return host_default or None
    if not scale_to_zero or block.min_replicas > 0:
        return None
    return float(block.scale_down_delay_seconds)


def starts_cold(server: llmserver_api.LLMServer) -> bool:
    """True for a server that may stay unloaded until its first request: autoscaled with
    minReplicas 0 and spec.replicas 0 (where the autoscaler left it)."""
    block = autoscaling(server)
    return block is not None and block.min_replicas == 0 and server.spec.replicas == 0


def park_at_start(unit: hosted.Hosted) -> bool:
    """Leaves a server that should not start now unloaded and says why; True when it was parked.

    Cold autoscaled servers wake on their first request; `replicas: 0` ones wait for `load-model`.
    Local mode applies this when `up` boots and when the local set gains a server."""
    if starts_cold(unit.server):
        unit.wakeable = True
        unit.set("Unloaded", "scaled to zero (spec.autoscaling.minReplicas 0); starts on the next request")
        return True
    if unit.server.spec.replicas == 0:
        unit.set("Unloaded", f"spec.replicas is 0; `llmserver load-model {unit.key} --local` loads it")
        return True
    return False
