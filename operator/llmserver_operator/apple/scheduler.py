"""Places Apple-bound LLMServers on Macs and publishes them; run from the reconcile of such a server.

Reads AppleNodes, their Leases and the other servers' placements, asks the pure `placement.place`
for a node, writes `status.placement` when it changes, and keeps the selector-less Service and the
`N-apple` EndpointSlice in step with the Mac's runtime. Node readiness itself is kept by
`refresh_node` (called from a timer), so a Mac that stops heartbeating loses its models here.

Placements run one at a time (a lock around read-allocations → decide → write status.placement):
reconciles of different servers run on parallel workers, and two of them deciding at once from
the same allocations would both take the last free memory of a Mac. The lock is per process;
one operator process reconciles at a time (leader election, llmserver_operator.leader).
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

import llmserver_api
from llmserver_api import llmserver

from llmserver_operator import children
from llmserver_operator import kube as kube_mod
from llmserver_operator import lease_clock
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import identity, leases, placement, publishing
from llmserver_operator.builders import common

Manifest = dict[str, Any]
Apply = Callable[[Manifest], Manifest]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the reconcile needs for the server's status."""

    placement: llmserver.Placement | None
    ready: bool
    problem: str | None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def server_key(namespace: str, name: str) -> str:
    """How AppleNode.status.models names a server."""
    return f"{namespace}/{name}"


def apple_backend(spec: llmserver_api.LLMServerSpec) -> str:
    """mlx or mlx-vlm; `auto` with an Apple request takes mlx-vlm when Vision is asked for."""
    if spec.backend in (llmserver_api.Backend.MLX, llmserver_api.Backend.MLX_VLM):
        return spec.backend.value
    return "mlx-vlm" if llmserver_api.Capability.VISION in (spec.capabilities or []) else "mlx"


class AppleScheduler:
    """Placement and publishing for the servers that run on Macs."""

    def __init__(self, kube: kube_mod.Kube, settings: settings_mod.Settings,
                 now: Callable[[], datetime.datetime] = _now, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.settings = settings
        self.now = now
        self.monotonic = monotonic
        self.renewals = lease_clock.RenewalClock()
        self._placing = threading.Lock()

    # --- nodes -----------------------------------------------------------------------------
    def refresh_node(self, raw: Manifest) -> bool:
        """Sets the node's Ready condition from its Lease; True when it changed (a write happened).

        Silence is measured on this process's clock from the last renewal it saw; a Mac not yet
        Ready needs one renewal seen here (a Lease left by a long-dead agent is not taken as alive
        after an operator restart), and a failed read forgives the time we could not look.
        """
        name = raw["metadata"]["name"]
        try:
            lease = self.kube.get("Lease", self.settings.apple_namespace, leases.lease_name(name))
        except kube_mod.ApiError:
            self.renewals.blind(self.monotonic())
            raise
        silence = self.renewals.observe(name, lease, self.monotonic())
        alive, reason, message = leases.liveness(lease, silence.seconds)
        wanted = "True" if alive else "False"
        conditions = list((raw.get("status") or {}).get("conditions") or [])
        current = next((c for c in conditions if c.get("type") == "Ready"), None)
        was_ready = current is not None and current.get("status") == "True"
        if alive and not was_ready and not silence.renewal_seen:
            return False  # first sighting of a Lease: wait for it to be renewed before trusting it
        if current is not None and current.get("status") == wanted and current.get("reason") == reason:
            return False
        updated = {"type": "Ready", "status": wanted, "reason": reason, "message": message,
                   "lastTransitionTime": leases.format_micro_time(self.now()).split(".")[0] + "Z"}
        if current is not None and current.get("status") == wanted:
            updated["lastTransitionTime"] = current.get("lastTransitionTime", updated["lastTransitionTime"])
        others = [c for c in conditions if c.get("type") != "Ready"]
        self.kube.patch_status("AppleNode", None, name, {"conditions": [*others, updated]})
        return True

    # --- servers ---------------------------------------------------------------------------
    def _required_bytes(self, server: llmserver_api.LLMServer, nodes: list[llmserver_api.AppleNode]) -> tuple[int, str]:
        """Memory the model needs: spec.resources.memory, else what an agent measured, else the default."""
        if server.spec.resources.memory:
            return int(llmserver_api.parse_quantity(server.spec.resources.memory)), "spec.resources.memory"
        key = server_key(common.namespace_of(server), common.name_of(server))
        for node in nodes:
            for model in (node.status.models if node.status else []):
                if model.server == key and model.memory_bytes:
                    return model.memory_bytes, f"measured by the agent on {node.metadata.name}"
        default = self.settings.apple_default_model_memory
        return int(llmserver_api.parse_quantity(default)), f"operator default {default}"

    def _allocations(self, server: llmserver_api.LLMServer, nodes: list[llmserver_api.AppleNode]) -> dict[str, int]:
        """Memory promised on each node to the other Apple servers, from their status.placement."""
        me = (common.namespace_of(server), common.name_of(server))
        promised: dict[str, int] = {}
        for raw in self.kube.list("LLMServer", None):
            meta = raw["metadata"]
            node = ((raw.get("status") or {}).get("placement") or {}).get("node")
            if not node or (meta.get("namespace"), meta["name"]) == me:
                continue
            try:
                other = llmserver_api.LLMServer.model_validate(raw)
            except ValueError:
                continue
            promised[node] = promised.get(node, 0) + self._required_bytes(other, nodes)[0]
        return promised

    def reconcile(self, server: llmserver_api.LLMServer, previous: Manifest, apply: Apply) -> Outcome:
        """Places (or keeps) the server, writes status.placement and publishes the Mac's endpoint."""
        namespace, name = common.namespace_of(server), common.name_of(server)
        with self._placing:  # read allocations, decide and record the decision before anyone else decides
            nodes = [llmserver_api.AppleNode.model_validate(raw) for raw in self.kube.list("AppleNode", None)]
            required, basis = self._required_bytes(server, nodes)
            allocations = self._allocations(server, nodes)
            candidates = [placement.candidate(node, allocations.get(node.metadata.name or "", 0)) for node in nodes]
            current = (previous.get("placement") or {}).get("node")
            selector = server.spec.apple.node_selector if server.spec.apple else {}
            decision = placement.place(candidates, apple_backend(server.spec), selector, required, current)
            node = next((n for n in nodes if n.metadata.name == decision.node), None)
            model = next((m for m in (node.status.models if node is not None and node.status else [])
                          if m.server == server_key(namespace, name)), None)
            port = model.port if model is not None else None
            chosen = None if node is None else llmserver.Placement(
                node=decision.node or "", address=node.spec.address, port=port, reason=decision.reason)
            self._set_placement(namespace, name, previous, chosen)
        apply(publishing.build_apple_service(server))
        if node is None or chosen is None:
            self._drop_slice(server)
            self._drop(server, "RoleBinding", identity.status_grant_name(server))
            return Outcome(None, False, f"{decision.reason}; the model needs {required} bytes ({basis})")
        node_ready = next(c for c in candidates if c.name == decision.node).ready
        ready = node_ready and model is not None and model.state == "Ready" and port is not None
        apply(identity.build_status_role(server))  # the node's agent reports download progress
        apply(identity.build_status_binding(server, chosen.node, self.settings.apple_namespace))
        failed = (model.message or "no details") if model is not None and model.state == "Failed" else None
        if port is None:
            self._drop_slice(server)
        else:
            apply(publishing.build_apple_endpoint_slice(
                server, chosen.node, node.spec.address, port, ready, self.settings.apple_namespace))
        return Outcome(chosen, ready, failed)

    def _drop_slice(self, server: llmserver_api.LLMServer) -> None:
        """Removes the Mac's endpoint."""
        self._drop(server, "EndpointSlice", publishing.slice_name(server))

    def _drop(self, server: llmserver_api.LLMServer, kind: str, name: str) -> None:
        """Removes one child of ours (read first: a resync with nothing to remove writes nothing)."""
        namespace = common.namespace_of(server)
        current = self.kube.get(kind, namespace, name)
        if current is not None and children.ours(current):  # never someone else's object of that name
            self.kube.delete(kind, namespace, name, uid=current["metadata"].get("uid"))

    def _set_placement(self, namespace: str, name: str, previous: Manifest,
                       chosen: llmserver.Placement | None) -> None:
        wire = chosen.to_wire() if chosen is not None else None
        old = previous.get("placement")
        if old is not None and wire is not None and {**old, "reason": ""} == {**wire, "reason": ""}:
            return  # same node/port: keep the first reason instead of rewriting it every pass
        if old == wire:
            return
        self.kube.patch_status("LLMServer", namespace, name, {"placement": wire})
        previous["placement"] = wire
