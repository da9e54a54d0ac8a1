"""Whether a Mac is alive, read from its coordination.k8s.io Lease. Pure: `now` is passed in.

The agent renews `applenode-<node>` the way kubelets renew their node Leases; a Lease not renewed
within its duration marks the AppleNode NotReady, which moves its models to other Macs.
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


def liveness(lease: dict[str, Any] | None, now: datetime.datetime) -> tuple[bool, str, str]:
    """(alive, reason, message) for the AppleNode's Ready condition."""
    if lease is None:
        return False, "LeaseNotFound", "the agent has not created its Lease yet"
    spec = lease.get("spec") or {}
    renewed, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
    if not renewed or not duration:
        return False, "LeaseIncomplete", "the Lease has no renewTime or leaseDurationSeconds"
    age = (now - parse_time(renewed)).total_seconds()
    if age > float(duration):
        return False, "HeartbeatMissed", f"no heartbeat for {age:.0f}s (lease duration {duration}s)"
    return True, "HeartbeatReceived", f"agent heartbeat {max(age, 0):.0f}s ago"
