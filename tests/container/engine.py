"""A private Docker engine for the container tier: Debian's dockerd, all in a temporary folder.

Its data root, exec root, pid file and socket live in one temporary folder, it reads no
daemon.json, and its containers sit on a bridge of its own in a subnet no other interface uses, so
it neither sees nor touches another engine's images, containers or addresses on this machine (two
engines on the default docker0 hand out the same container addresses).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
DATA_ROOT_SIZE = "8g"
"""A cap, not a reservation: a session's images and build cache take about 1.5 GB of it."""
BRIDGE_SUBNETS = ipaddress.ip_network("172.30.0.0/16").subnets(new_prefix=24)
"""Where the engine's bridge takes the first /24 that no route on this machine overlaps."""


def with_sbin(path: str) -> str:
    """PATH plus the sbin folders, where dockerd, debootstrap and the tools they call live."""
    folders = path.split(os.pathsep) if path else []
    return os.pathsep.join([*folders, *(folder for folder in SBIN if folder not in folders)])


def free_subnet(candidates: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first of `candidates` that no route on this machine overlaps."""
    routes = subprocess.run(
        ["ip", "-4", "-json", "route", "show", "table", "all"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    taken = [
        ipaddress.ip_network(route["dst"], strict=False)
        for route in json.loads(routes)
        if route["dst"][0].isdigit()  # not "default"
    ]
    return next(s for s in candidates if not any(s.overlaps(t) for t in taken))


class EngineError(RuntimeError):
    """The engine did not start or stop; the message holds the end of its log."""


def docker_client_for(dockerd: str) -> str:
    """The docker client shipped with this dockerd (a newer one on PATH may not match it)."""
    sibling = Path(dockerd).resolve().parent.parent / "bin" / "docker"
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("docker")
    if found is None:
        raise EngineError(f"no docker client next to {dockerd} or on PATH")
    return found


class Engine:
    """One running dockerd and the client that talks to it."""

    def __init__(self, dockerd: str) -> None:
        self.dockerd = dockerd
        self.client = docker_client_for(dockerd)
        # A short path: a unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="dt-docker-"))
        self.socket = self.root / "docker.sock"
        self.log_path = self.root / "dockerd.log"
        self.host = f"unix://{self.socket}"
        self.data_root = self.root / "data"
        self.bridge = f"dt{secrets.token_hex(4)}"
        self._process: subprocess.Popen[bytes] | None = None
        self._mounted = False
        self._bridged = False

    def start(self) -> None:
        """Start dockerd and wait until it answers (on failure, `stop` cleans up)."""
        self.mount_data_root()
        self.create_bridge()
        config = self.root / "daemon.json"
        config.write_text(json.dumps({}))
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.dockerd,
                    "--config-file", str(config),
                    "--data-root", str(self.data_root),
                    "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "docker.pid"),
                    "--host", self.host,
                    "--bridge", self.bridge,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": with_sbin(os.environ.get("PATH", ""))},
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EngineError(
                    f"dockerd exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if self.socket.exists() and self.run("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise EngineError(
            f"dockerd did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def mount_data_root(self) -> None:
        """Keep images and containers in memory when the system allows it.

        The layers never reach the disk, which makes builds faster, and removing them at the end
        is instant: deleting a gigabyte of fresh layers from disk waits for their write-back (a
        minute on the test machines). On disk is the fallback.
        """
        self.data_root.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DATA_ROOT_SIZE},mode=0710", "dt-docker",
             str(self.data_root)],
            capture_output=True,
        )  # fmt: skip
        self._mounted = mounted.returncode == 0

    def create_bridge(self) -> None:
        """A bridge for this engine's containers, on a /24 that nothing else here routes."""
        subnet = free_subnet(BRIDGE_SUBNETS)
        gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        self._bridged = True
        subprocess.run(["ip", "addr", "add", gateway, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def stop(self) -> None:
        """Stop dockerd (it stops its containers first) and remove its folder."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._bridged:
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
            self._bridged = False
        if self._mounted:
            subprocess.run(["umount", "--lazy", str(self.data_root)], check=False)
            self._mounted = False
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The variables a docker client needs to reach this engine."""
        return {"DOCKER_HOST": self.host}

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` against this engine and capture its output as text."""
        result = subprocess.run(
            [self.client, "--host", self.host, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise EngineError(
                f"docker {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def log_tail(self, lines: int = 30) -> str:
        """The last lines dockerd wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
