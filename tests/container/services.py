"""Local stand-ins for what build_and_push.sh talks to: moto's server (STS, ECR) and a registry."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers at all (any status), or fail with the server's log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args} exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()}")


@contextmanager
def serving(command: list[str], url: str, log: Path) -> Iterator[None]:
    """Run a server for the duration of the block, ready when the block starts."""
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_http(url, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def moto_server(executable: str, folder: Path) -> Iterator[str]:
    """moto's server on a loopback port; yields its endpoint URL (for AWS_ENDPOINT_URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving([executable, "-H", "127.0.0.1", "-p", str(port)], url, folder / "moto.log"):
        yield url


@contextmanager
def registry(executable: str, folder: Path) -> Iterator[str]:
    """Debian's docker-registry on a loopback port, storing in `folder`; yields its host:port.

    Docker treats registries on 127.0.0.0/8 as insecure by default, so plain HTTP is enough.
    """
    port = free_port()
    config = folder / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    host = f"127.0.0.1:{port}"
    with serving([executable, "serve", str(config)], f"http://{host}/v2/", folder / "registry.log"):
        yield host
