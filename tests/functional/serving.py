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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import require_tool
from processes import Process, children, command_line, descendants

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


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    seen: set[Process] = field(default_factory=set)
    """Every process `serve` was seen to have started: see `record`."""

    def record(self) -> None:
        """Remember every process `serve` has started by now (its workers are replaced at times)."""
        for pid in descendants(self.process.pid):
            found = Process.of(pid)
            if found is not None:
                self.seen.add(found)

    def left(self) -> list[Process]:
        """The processes `serve` started that still run."""
        return sorted(p for p in self.seen if p.running())

    def port_free(self) -> bool:
        """True when nothing listens on the port any more."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

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
        self.record()

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
        self.record()
        return next(p for p in children(self.process.pid) if "gunicorn" in command_line(p))

    @property
    def nginx_master(self) -> int:
        self.record()
        return next(p for p in children(self.process.pid) if "nginx" in command_line(p))

    def stop(self) -> int:
        """SIGTERM `serve` and return its exit status; fail if it left a process it started
        running. Either way, nothing it started runs afterwards."""
        self.record()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.kill_left()
            raise
        left = self.kill_left()
        assert left == [], f"serve exited with {status}, leaving {[p.command for p in left]}"
        return status

    def kill_left(self) -> list[Process]:
        """Kill what `serve` started and left running, and return it."""
        left = self.left()
        for process in left:
            process.kill()
        return left


def start(base_dir: Path, tmp_path: Path, via: tuple[str, ...] = (), **environ: str) -> Server:
    """Start `serve` against `base_dir` (the /opt/ml tree) on a free port, run by the command
    `via` if any (nohup); not yet ready."""
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
            [*via, sys.executable, str(SERVE)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Server(process, port, log)


@contextmanager
def running(base_dir: Path, tmp_path: Path, **environ: str) -> Iterator[Server]:
    """A ready `serve` (see `start`), which must stop cleanly (exit 0) when the block ends."""
    server = start(base_dir, tmp_path, **environ)
    try:
        server.wait_ready()
        yield server
    finally:
        assert server.stop() == 0, server.output
