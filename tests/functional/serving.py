"""Start the real `serve` (real nginx, real gunicorn) on a free port and talk HTTP to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "container" / "decision_trees" / "serve"
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` every 20 ms until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def answers_ping(self) -> bool:
        try:
            return self.request("GET", "/ping", timeout=2)[0] == 200
        except OSError:
            return False

    def wait_ready(self) -> None:
        def ready_or_dead() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output}")
            return self.answers_ping()

        wait_for(ready_or_dead, START_SECONDS, "/ping to answer 200")

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def lines(self) -> list[dict[str, Any]]:
        """Every line of the output (stdout and stderr), parsed: each is a JSON object."""
        return [json.loads(line) for line in self.output.splitlines()]

    @property
    def runtime_dir(self) -> Path:
        """The directory `serve` made for the gunicorn socket, read from its settings line."""
        line = next(x for x in self.lines if x["source"] == "serve" and x["message"] == "settings")
        return Path(line["settings"]["runtime_dir"])

    @property
    def gunicorn_master(self) -> int:
        return next(p for p in children(self.process.pid) if "gunicorn" in command_line(p))

    @property
    def nginx_master(self) -> int:
        return next(p for p in children(self.process.pid) if "nginx" in command_line(p))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start(base_dir: Path, tmp_path: Path, **environ: str) -> Server:
    """Start `serve` against `base_dir` (the /opt/ml tree) on a free port; not yet ready."""
    require_tool("nginx")
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        **environ,
    }
    # Appending, as every writer does: nginx appends its access log to the same file.
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, str(SERVE)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Server(process, port, log)
