"""The processes a test started, from Linux's /proc: which still run, and their command lines."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def _running_stats() -> Iterator[tuple[int, list[str]]]:
    """Each running process (an exited one not yet reaped is left out): its pid and the fields of
    /proc/PID/stat after the command (state, parent, process group, ...)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in "ZX":
            yield int(stat.parent.name), fields


def children(pid: int) -> list[int]:
    """The running processes whose parent is `pid`."""
    return [child for child, fields in _running_stats() if int(fields[1]) == pid]


def descendants(pid: int) -> list[int]:
    found = children(pid)
    for child in list(found):
        found += descendants(child)
    return found


@dataclass(frozen=True, order=True)
class Process:
    """A process by its id and its start time, which tells it from a later one given the same id."""

    pid: int
    started: int
    command: str = field(compare=False)

    @classmethod
    def of(cls, pid: int) -> Process | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return cls(pid, int(fields[19]), command_line(pid).strip())

    def running(self) -> bool:
        """True while it runs; an exited one waiting to be reaped (a zombie) does not."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        return int(fields[19]) == self.started and fields[0] not in "ZX"

    def kill(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants children of this process, not of init (Linux; False elsewhere):
    what a test left behind can then be found among them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def group(pgid: int) -> list[int]:
    """The running processes of a process group."""
    return [member for member, fields in _running_stats() if int(fields[2]) == pgid]


def stop_group(pgid: int, seconds: float = 30) -> None:
    """SIGTERM every process of a group, and SIGKILL what still runs `seconds` later."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
