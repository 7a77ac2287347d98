"""Shared fixtures. A test needing a tool skips without it on a laptop, but fails under CI=true.

No process the suite starts may outlive it: at the end of the session every nginx, gunicorn, serve
or train process still running that the suite started is named and killed, and the session fails
under CI=true (elsewhere it warns).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from processes import Process, become_subreaper, descendants

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVING_WORDS = ("nginx", "gunicorn", "serve", "train")
"""A leftover whose command line holds one of these fails the session; any other is only named."""


def require_tool(name: str) -> str:
    """The tool's path; skip (or, in CI, fail) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(f"{message}: CI must have every tool", pytrace=False)
        pytest.skip(message)
    return path


SUMMARY = pytest.StashKey[list[Callable[[], list[str]]]]()
"""Lines for the end of the report, each list made when it is printed (a fuzz's totals)."""

BEFORE = pytest.StashKey[set[Process]]()
"""What ran at the start of the session; set only where orphans can be found (Linux)."""
LEFT = pytest.StashKey[list[Process]]()


def started_by_the_suite(before: set[Process]) -> list[Process]:
    """What runs among this process's descendants (every orphan's too: see become_subreaper)
    that did not run when the session started."""
    found = (Process.of(pid) for pid in descendants(os.getpid()))
    return sorted(p for p in found if p is not None and p not in before)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Orphans (a killed master's workers, a script's server) come to pytest instead of init, so
    # that a leftover is found even after whatever started it has exited.
    if become_subreaper():
        session.config.stash[BEFORE] = set(started_by_the_suite(set()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if BEFORE not in session.config.stash:
        return
    left = [p for p in started_by_the_suite(session.config.stash[BEFORE]) if p.running()]
    session.config.stash[LEFT] = left
    for process in left:
        process.kill()
    if IN_CI and any(any(w in p.command for w in SERVING_WORDS) for p in left):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for lines in terminalreporter.config.stash.get(SUMMARY, []):
        terminalreporter.write_line("")
        for text in lines():
            terminalreporter.write_line(text)
    left = terminalreporter.config.stash.get(LEFT, [])
    if left:
        terminalreporter.section(
            f"processes the tests started outlived them, now killed: {len(left)}", red=True
        )
        for process in left:
            terminalreporter.write_line(f"  {process.pid} {process.command}", red=True)
