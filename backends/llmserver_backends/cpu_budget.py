"""How many CPU threads an in-process engine should compute with.

torch and llama.cpp size their thread pools from the CPUs they see: the node's cores (llama.cpp:
half of them), not the pod's CPU limit. A pod limited to 2 CPUs on a 64-core node then runs 32 or
64 compute threads that the kernel's CFS quota throttles in turn, which is slower than 2 threads by
an order of magnitude (measured here: torch with the default 2 threads on 2 busy cores decoded
~17x slower than with 1). The budget is the smaller of the affinity mask (a cpuset) and the cgroup
CPU quota (`cpu.max` on cgroup v2, `cpu.cfs_quota_us` / `cpu.cfs_period_us` on v1), rounded up.
"""

from __future__ import annotations

import math
import os
import pathlib

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def quota_cpus(root: pathlib.Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in CPUs (e.g. 2.5), or None when unlimited or unknown."""
    try:
        fields = (root / "cpu.max").read_text().split()
        if len(fields) == 2 and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        return None
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def cpu_budget(root: pathlib.Path = CGROUP_ROOT) -> int:
    """Compute threads worth running: the affinity mask, capped by the CPU quota (at least 1)."""
    cpus = affinity_cpus()
    quota = quota_cpus(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)
