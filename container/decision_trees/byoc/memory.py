"""How much memory this process may really use, and how many serving workers fit in it.

Serverless endpoints give a container 1 to 6 GB, and an inference pipeline's containers share one
instance's memory: a worker per CPU can ask for more than the container has, and the kernel then
kills a worker in the middle of a request. The figures below are measured with the demo model
(README "Serverless inference", benchmarks/README.md); a bigger model or more libraries in the
master take more: set SAGEMAKER_MODEL_SERVER_WORKERS then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from byoc.cpus import CGROUP_ROOT, PROC_CGROUP, own_cgroup, read_value

MEMINFO = Path("/proc/meminfo")
MIB = 1024 * 1024
RESERVED_MIB = 128
"""`serve`, gunicorn's master holding the libraries and the model, and nginx, before any worker:
17 + 79 + 13 MiB resident, measured."""
WORKER_MIB = 12
"""A worker's private memory once it has made its first prediction: 11 MiB, measured."""
BODY_FACTOR = 20
"""A worker's peak for one body, in times the payload limit: JSON Lines, the costliest format,
takes 19 times its size (README "Limits": +115 MiB at 6 MB, +1,805 MiB at 100 MB), and nginx
holds one more copy of the body while the worker answers it."""


def memory_limit(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP, meminfo: Path = MEMINFO
) -> int | None:
    """The bytes this process may use: the lowest cgroup limit from its own cgroup up to the
    root (v2 `memory.max`, v1 `memory.limit_in_bytes`), at most the machine's memory; None when
    none of them can be read (not Linux)."""
    v1 = cgroup_root / "memory"
    limits = [
        *_limits(cgroup_root, own_cgroup(proc_cgroup), "memory.max"),
        *_limits(v1, own_cgroup(proc_cgroup, "memory"), "memory.limit_in_bytes"),
    ]
    for line in read_value(meminfo).splitlines():
        if line.startswith("MemTotal:"):
            limits.append(int(line.split()[1]) * 1024)
    return min(limits, default=None)


def _limits(mount: Path, own: str, name: str) -> Iterator[int]:
    """Every limit set in `name` from the cgroup `own` up to the mount's root: a parent's limit
    binds its children. Inside a container the mount is the container's own cgroup, and `own`
    (the host's path) then does not exist below it: only its root is read."""
    parts = Path(own).parts
    for depth in range(len(parts), -1, -1):
        value = read_value(mount.joinpath(*parts[:depth], name))
        if value.isdigit():  # v2 writes "max" for no limit; v1 a huge number
            yield int(value)


def worker_mib(max_payload_mb: int) -> int:
    """What one more worker may take: its own memory and its peak for a body at the limit."""
    return WORKER_MIB + BODY_FACTOR * max_payload_mb


def workers_that_fit(limit_bytes: int, max_payload_mb: int, model_bytes: int = 0) -> int:
    """The workers whose peaks fit beside the reserved memory and the model; at least one."""
    spare_mib = (limit_bytes - model_bytes) // MIB - RESERVED_MIB
    return max(1, spare_mib // worker_mib(max_payload_mb))


def model_bytes(model_dir: Path) -> int:
    """The size of the model's files: a rough measure of the model in gunicorn's master (more,
    when the files are compressed)."""
    try:
        return sum(path.stat().st_size for path in model_dir.rglob("*") if path.is_file())
    except OSError:
        return 0
