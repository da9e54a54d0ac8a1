"""Whether a Mac is alive, read from its coordination.k8s.io Lease. Pure: the silence is passed in.

The agent renews `applenode-<node>` the way kubelets renew their node Leases; a Lease not renewed
within its duration marks the AppleNode NotReady, which moves its models to other Macs. "Not
renewed" is judged on the operator's own clock (lease_clock.RenewalClock: when the operator last
saw renewTime change), never by comparing the Mac's clock with the operator's.
"""

from __future__ import annotations

import datetime
from typing import Any


def lease_name(node: str) -> str:
    """The Lease an agent renews for `node`."""
    return f"applenode-{node}"


def parse_time(value: str) -> datetime.datetime:
    """RFC 3339 with or without fractional seconds (MicroTime and Time both occur)."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_micro_time(moment: datetime.datetime) -> str:
    """The MicroTime format Lease.spec.renewTime uses."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def liveness(lease: dict[str, Any] | None, silent_seconds: float) -> tuple[bool, str, str]:
    """(alive, reason, message) for the AppleNode's Ready condition; `silent_seconds` is how long
    the operator has seen no renewal of the Lease (lease_clock.RenewalClock)."""
    if lease is None:
        return False, "LeaseNotFound", "the agent has not created its Lease yet"
    spec = lease.get("spec") or {}
    renewed, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
    if not renewed or not duration:
        return False, "LeaseIncomplete", "the Lease has no renewTime or leaseDurationSeconds"
    if silent_seconds > float(duration):
        return False, "HeartbeatMissed", f"no heartbeat seen for {silent_seconds:.0f}s (lease duration {duration}s)"
    return True, "HeartbeatReceived", f"agent heartbeat seen {silent_seconds:.0f}s ago"
