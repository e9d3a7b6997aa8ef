"""How many CPUs this process may use: the default number of executor processes.

`os.cpu_count()` is the machine's count; in a container that is the node's, not the pod's. The
CPUs this process may run on (its affinity) and, under a CPU limit, the cgroup's quota (rounded
up: a limit of 1.5 CPUs is worth two processes) are what it can actually use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def available_cpus() -> int:
    """The CPUs this process can use: its affinity, capped by a cgroup CPU limit. Blocks (reads
    two small files)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, affinity if quota is None else min(affinity, quota))


def cgroup_cpu_limit(root: Path = CGROUP) -> int | None:
    """The container's CPU limit rounded up to whole CPUs, or None without one (cgroup v2
    `cpu.max`, else v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            v1 = root / "cpu"
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota == "max" or int(quota) <= 0 or int(period) <= 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))
