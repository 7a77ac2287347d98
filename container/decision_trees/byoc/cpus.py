"""How many CPUs this process may really use, for training's parser and serving's workers alike."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may really use: its affinity, lowered by a cgroup v2 or v1 quota.

    `os.cpu_count()` counts the host's CPUs, so a container limited to 2 CPUs on a 64-CPU host
    would start 64 workers, each holding its own share of memory and fighting for 2 CPUs.
    """
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def _cgroup_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """CPUs allowed by the CFS quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None when unlimited."""
    candidates = [cgroup_root / own_cgroup(proc_cgroup) / "cpu.max", cgroup_root / "cpu.max"]
    for path in candidates:
        fields = read_value(path).split()
        if len(fields) == 2:
            return None if fields[0] == "max" else int(fields[0]) / int(fields[1])
    for controller in ("cpu", "cpu,cpuacct"):
        quota = read_value(cgroup_root / controller / "cpu.cfs_quota_us")
        period = read_value(cgroup_root / controller / "cpu.cfs_period_us")
        if quota and period:
            return None if int(quota) <= 0 else int(quota) / int(period)
    return None


def own_cgroup(proc_cgroup: Path, controller: str = "") -> str:
    """This process's cgroup path relative to the mount: v2's by default, else that of the v1
    `controller` ("" inside a cgroup namespace, or when it cannot be read)."""
    for line in read_value(proc_cgroup).splitlines():
        fields = line.split(":", 2)
        if len(fields) == 3 and controller in fields[1].split(","):
            return fields[2].strip().strip("/")
    return ""


def read_value(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
