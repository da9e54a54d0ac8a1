"""The autoscaling rule, pure: what one server's replica count should be now, from what the gateways
measured. No clock, no API: the loop passes the time and the measurement in and keeps the memory.

desired = ceil(average in flight over windowSeconds / targetInFlight), clamped to [min, max]; any
demand now lifts 0 to 1 at once (a held request waits for it; one refused while cold, with
holdSeconds 0, asked for it). Up is applied at once; down only to
the highest desired count of the last scaleDownDelaySeconds (so it must have stayed lower that
long, as the HPA's stabilization window does), and never in a round where a gateway could not be
read (its requests are unknown). A spec.replicas outside [min, max] is clamped at once.
"""

from __future__ import annotations

import dataclasses
import math

from llmserver_api import elastic


@dataclasses.dataclass(frozen=True)
class Policy:
    """spec.autoscaling as the rule uses it (a Mac-placed server runs 0 or 1 replica)."""

    min_replicas: int
    max_replicas: int
    target_in_flight: int
    window_seconds: float
    scale_down_delay_seconds: float

    @classmethod
    def of(cls, autoscaling: elastic.Autoscaling, mac: bool = False) -> Policy:
        """The policy of a server; `mac`: placed on a Mac, whose agent loads on 1 and unloads on 0."""
        most = min(autoscaling.max_replicas, 1) if mac else autoscaling.max_replicas
        return cls(min(autoscaling.min_replicas, most), most, autoscaling.target_in_flight,
                   float(autoscaling.window_seconds), float(autoscaling.scale_down_delay_seconds))

    def clamp(self, replicas: int) -> int:
        """`replicas` within [min, max]."""
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclasses.dataclass(frozen=True)
class Demand:
    """One round's measurement of one server, summed over the gateways that answered."""

    in_flight: int
    held: int = 0
    complete: bool = True  # every gateway answered: a lower count is trustworthy
    refused: int = 0  # requests refused at once while cold, lately (holdSeconds 0)

    @property
    def any(self) -> bool:
        """Whether a request is in flight or held now, or was lately refused for want of a replica."""
        return self.in_flight > 0 or self.held > 0 or self.refused > 0


@dataclasses.dataclass(frozen=True)
class Memory:
    """What the rule remembers between rounds of one server."""

    since: float | None = None  # when the first round was seen: a scale-down needs a full delay of history
    samples: tuple[tuple[float, int], ...] = ()  # (time, in flight) within the window
    desires: tuple[tuple[float, int], ...] = ()  # (time, desired) within the scale-down delay


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of one round: `replicas` to write (None: leave spec.replicas as it is)."""

    desired: int
    average: float
    replicas: int | None = None
    direction: str | None = None  # "up" | "down" when replicas is set
    reason: str = ""


def _average(samples: tuple[tuple[float, int], ...]) -> float:
    return sum(value for _, value in samples) / len(samples) if samples else 0.0


def decide(policy: Policy, current: int, memory: Memory, now: float,
           demand: Demand | None) -> tuple[Decision, Memory]:
    """One round for a server whose spec.replicas is `current`, at time `now` (seconds, monotonic).

    `demand` is None when nothing was measured (no gateway known or none answered): only the clamp
    applies then. Returns the decision and the memory for the next round."""
    # the history a scale-down relies on starts at the first measured round (again after a round
    # where no gateway answered at all: the requests of that time are unknown)
    since = None if demand is None else (now if memory.since is None else memory.since)
    samples = memory.samples + (((now, demand.in_flight),) if demand is not None else ())
    samples = tuple(sample for sample in samples if sample[0] > now - policy.window_seconds)
    average = _average(samples)
    desired = policy.clamp(math.ceil(average / policy.target_in_flight - 1e-9))
    if demand is not None and demand.any and desired == 0:
        desired = policy.clamp(1)
    if demand is None:  # nothing to want more or less from: what runs (within the bounds)
        desired = policy.clamp(current)
    desires = memory.desires + (((now, desired),) if demand is not None else ())
    desires = tuple(entry for entry in desires if entry[0] >= now - policy.scale_down_delay_seconds)
    remembered = Memory(since, samples, desires)
    shown = round(average, 2)

    def write(replicas: int, reason: str) -> tuple[Decision, Memory]:
        return Decision(desired, shown, replicas, "up" if replicas > current else "down", reason), remembered

    clamped = policy.clamp(current)
    if clamped != current:
        return write(max(clamped, desired) if current < clamped else clamped,
                     f"spec.replicas {current} is outside [{policy.min_replicas}, {policy.max_replicas}]")
    if demand is None:
        return Decision(desired, shown, reason="no gateway load measured: replicas kept"), remembered
    if desired > current:
        refused = f", {demand.refused} refused lately" if demand.refused else ""
        why = (f"{demand.in_flight} request(s) in flight, {demand.held} held{refused}, with no replica" if current == 0
               else f"average in flight {shown:g} over {policy.window_seconds:g}s, "
                    f"target {policy.target_in_flight} per replica")
        return write(desired, why)
    settle_at = max(value for _, value in desires)  # the highest desired count of the delay: at least `desired`
    if settle_at >= current:
        return Decision(desired, shown), remembered
    if not demand.complete:
        return Decision(desired, shown, reason="a gateway could not be read: no scale-down this round"), remembered
    if since is None or now - since < policy.scale_down_delay_seconds:
        return Decision(desired, shown), remembered
    return write(settle_at, f"desired stayed at or below {settle_at} for {policy.scale_down_delay_seconds:g}s "
                         f"(average in flight {shown:g}, target {policy.target_in_flight} per replica)")
