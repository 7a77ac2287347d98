"""tests/conftest.py's end-of-session check: what a test leaves running is named and killed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from processes import Process

TESTS = Path(__file__).resolve().parents[1]
# One leftover that serves (a command line with "serve") whose parent exits at once, an orphan,
# and one that does not serve; both write their pid where the outer test reads it.
LEAKY_TEST = """
import subprocess, sys, time
from pathlib import Path

def test_leaves_two_processes_behind():
    out = Path(__file__).with_name("pids")
    sleep = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()} '); time.sleep(60)"
    subprocess.run(["sh", "-c", f'{sys.executable} -c "{sleep}" {out} serve &'], check=True)
    subprocess.Popen([sys.executable, "-c", sleep, str(out), "idle"])
    for _ in range(500):
        if out.exists() and len(out.read_text().split()) == 2:
            return
        time.sleep(0.02)
"""


def run_session(tmp_path: Path, ci: str) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    environ = {**os.environ, "CI": ci, "PYTHONPATH": str(TESTS)}
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2, session.stdout
    return session, pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux's /proc and prctl")
@pytest.mark.parametrize(("ci", "exit_code"), [("true", 1), ("", 0)])
def test_leftovers_are_named_and_killed_and_fail_the_session_in_ci(
    tmp_path: Path, ci: str, exit_code: int
) -> None:
    session, pids = run_session(tmp_path, ci)
    assert session.returncode == exit_code, session.stdout + session.stderr
    assert "processes the tests started outlived them, now killed: 2" in session.stdout
    for pid in pids:
        assert re.search(rf"^  {pid} .*(serve|idle)$", session.stdout, re.MULTILINE)
        found = Process.of(pid)
        assert found is None or not found.running()
