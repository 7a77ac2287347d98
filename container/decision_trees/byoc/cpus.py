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
    candidates = [cgroup_root / _own_cgroup_v2(proc_cgroup) / "cpu.max", cgroup_root / "cpu.max"]
    for path in candidates:
        fields = _read(path).split()
        if len(fields) == 2:
            return None if fields[0] == "max" else int(fields[0]) / int(fields[1])
    for controller in ("cpu", "cpu,cpuacct"):
        quota = _read(cgroup_root / controller / "cpu.cfs_quota_us")
        period = _read(cgroup_root / controller / "cpu.cfs_period_us")
        if quota and period:
            return None if int(quota) <= 0 else int(quota) / int(period)
    return None


def _own_cgroup_v2(proc_cgroup: Path) -> str:
    """This process's cgroup v2 path relative to the mount ("" inside a cgroup namespace)."""
    for line in _read(proc_cgroup).splitlines():
        if line.startswith("0::"):
            return line[3:].strip("/")
    return ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
