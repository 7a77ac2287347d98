"""serve's process handling, on small stand-ins for gunicorn and nginx (`sh` and `sleep`).

Each case runs in a Python process of its own, which loads `serve` and becomes the subreaper, as
serve does: orphans come to it, not to pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import Process

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_DIR = ROOT / "container" / "decision_trees"
TESTS = ROOT / "tests"
LOAD_SERVE = f"""
import json, os, signal, sys, time
from importlib.machinery import SourceFileLoader
from processes import Process, children
serve = SourceFileLoader("serve", {str(PROGRAM_DIR / "serve")!r}).load_module()
assert serve.prctl(serve.PR_SET_CHILD_SUBREAPER, 1)

def workers(pid, count):
    for _ in range(500):
        found = children(pid)
        if len(found) == count:
            return [Process.of(p) for p in found]
        time.sleep(0.02)
    raise AssertionError(f"{{pid}} has no {{count}} children")
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups and subreapers as on Linux"
)


def run(script: str) -> dict[str, object]:
    """Run `script` after LOAD_SERVE; it prints one JSON object, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SERVE + script],
        env={**os.environ, "PYTHONPATH": f"{PROGRAM_DIR}{os.pathsep}{TESTS}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_signalling_a_group_whose_master_is_gone_reaches_its_workers() -> None:
    found = run("""
group = serve.Group("nginx", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
started = workers(group.master.pid, 2)
group.master.kill()
group.master.wait()
orphaned = group.running()
group.signal(signal.SIGTERM)
time.sleep(0.2)
serve.reap([group])
print(json.dumps({"workers": [p.running() for p in started], "orphaned": orphaned,
                  "after": group.running(), "children": serve.own_children()}))
""")
    assert found["workers"] == [False, False]
    assert found["orphaned"] is True
    assert found["after"] is False
    assert found["children"] == []


def test_reaping_keeps_a_masters_exit_status_and_reaps_orphans() -> None:
    found = run("""
group = serve.Group("gunicorn", ["sh", "-c", "sleep 0.1 & exit 3"])
time.sleep(0.5)
serve.reap([group])
print(json.dumps({"status": group.master.returncode, "children": serve.own_children()}))
""")
    assert found == {"status": 3, "children": []}


def test_stopping_everything_kills_a_worker_that_left_its_group() -> None:
    found = run("""
group = serve.Group("gunicorn", ["sh", "-c", "setsid sleep 60 & exec sleep 60"])
(escaped,) = workers(group.master.pid, 1)
serve.stop_everything([group])
print(json.dumps({"master": group.master.returncode, "escaped": escaped.running(),
                  "children": serve.own_children()}))
""")
    assert found == {"master": -9, "escaped": False, "children": []}


def test_a_master_gets_sigterm_when_serve_dies() -> None:
    found = run("""
group = serve.Group("nginx", ["sleep", "60"])
print(json.dumps({"master": group.master.pid}))
sys.stdout.flush()
os._exit(0)
""")
    master = Process.of(found["master"])
    deadline = time.monotonic() + 10
    while master is not None and master.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert master is None or not master.running()
