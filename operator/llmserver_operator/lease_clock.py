"""When this process last SAW a Lease renewed, on its own monotonic clock (the kubelet/client-go way).

A Lease's renewTime is written with the renewer's wall clock, which may be hours off ours (a Mac
whose clock drifted, a VM restored from a snapshot). So a Lease is never judged by subtracting
its renewTime from our clock: we remember when we observed its spec change and measure silence
from that moment. Pure: every method takes `now` (seconds on a monotonic clock) from the caller.

While we ourselves cannot read the API, silence says nothing about the renewer: `blind(now)`
records our outage, and silence is counted again from its end, so an API outage never expires
every Lease at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Hashable
from typing import Any


@dataclasses.dataclass
class Sighting:
    """One Lease as last seen: its spec (serialised) and when it last changed."""

    spec: str
    changed_at: float
    changes: int  # how many changes were seen since the first sighting


@dataclasses.dataclass(frozen=True)
class Silence:
    """How long a Lease has gone without a renewal we could have seen."""

    seconds: float
    renewal_seen: bool  # a renewal was seen by this process (not just a first sighting)


class RenewalClock:
    """Remembers, per key, when a Lease's spec last changed on our clock."""

    def __init__(self) -> None:
        self._seen: dict[Hashable, Sighting] = {}
        self._blind_at = float("-inf")

    def observe(self, key: Hashable, lease: dict[str, Any] | None, now: float) -> Silence:
        """Records a read of the Lease at `now`; returns its silence (0 when it just changed)."""
        spec = json.dumps((lease or {}).get("spec") or {}, sort_keys=True)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = Sighting(spec, now, 0)
        elif seen.spec != spec:
            seen.spec, seen.changed_at, seen.changes = spec, now, seen.changes + 1
        return Silence(max(0.0, now - max(seen.changed_at, self._blind_at)), seen.changes > 0)

    def blind(self, now: float) -> None:
        """We failed to read the API at `now`: silence up to then is not the renewer's fault."""
        self._blind_at = max(self._blind_at, now)

    def forget(self, key: Hashable) -> None:
        """Drops what was seen of one Lease (its owner is gone)."""
        self._seen.pop(key, None)
