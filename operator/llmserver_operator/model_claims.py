"""Which LLMServers claim which served model name, as the operator's LLMServer watch sees them.

The gateway routes a model name to the oldest LLMServer claiming it (creationTimestamp, then
namespace/name: llmserver_gateway.kubeview.build); the others get a ModelNameConflict condition.
The operator learns every server's spec.model from the watch events it already receives (no list
calls): the event handler records each claim here, and the reconciler asks who wins. A change of
claim returns the other servers of the old and new name, whose verdict may have changed.
Thread-safe: kopf runs sync handlers and reconciles in worker threads.
"""

from __future__ import annotations

import dataclasses
import threading

Ref = tuple[str, str]  # (namespace, name)


@dataclasses.dataclass(frozen=True, order=True)
class Claim:
    """One server's claim, ordered as the gateway picks the winner."""

    created: str
    namespace: str
    name: str

    @property
    def ref(self) -> Ref:
        """(namespace, name)."""
        return (self.namespace, self.name)


class ModelClaims:
    """The current claims; `record` on every LLMServer event, `winner` during a reconcile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[Ref, tuple[str, Claim]] = {}

    def record(self, namespace: str, name: str, model: str | None, created: str) -> set[Ref]:
        """Records a server's model (None: it is gone or invalid); returns the other servers claiming
        the model it had or has now, when its claim changed (else nothing)."""
        ref = (namespace, name)
        with self._lock:
            old = self._models.get(ref)
            new = (model, Claim(created, namespace, name)) if model else None
            if old == new:
                return set()
            if new is None:
                self._models.pop(ref, None)
            else:
                self._models[ref] = new
            touched = {m for m in (old[0] if old else None, model) if m}
            return {other for other, (m, _) in self._models.items() if m in touched and other != ref}

    def winner(self, namespace: str, name: str, model: str, created: str) -> Claim | None:
        """The older claim that keeps `model` instead of this server, or None when this one wins."""
        mine = Claim(created, namespace, name)
        with self._lock:
            rivals = [claim for m, claim in self._models.values() if m == model and claim.ref != mine.ref]
        first = min(rivals, default=None)
        return first if first is not None and first < mine else None
