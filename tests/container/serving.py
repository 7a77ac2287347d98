"""Run `serve` from an image as SageMaker does, the model mounted read-only, and talk HTTP to it."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine

READY_TIMEOUT_S = 120.0
"""SageMaker's local mode waits this long for /ping; a real endpoint waits up to 4 minutes."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Server:
    """A running `serve` container reachable on a loopback port."""

    container: str
    port: int

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: bytes, content_type: str, accept: str = "") -> Answer:
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        return self.request("POST", path, body, headers)


def published_port(engine: Engine, container: str, port: int) -> int:
    """The loopback port Docker published `port` of the container on."""
    mapping = engine.run("port", container, f"{port}/tcp").stdout.split()[0]
    return int(mapping.rsplit(":", 1)[1])


def wait_until_ready(engine: Engine, server: Server) -> None:
    """Poll /ping until it answers 200; fail early with the logs if the container exits."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = engine.run("inspect", "--format", "{{.State.Running}}", server.container).stdout
        if state.strip() != "true":
            logs = engine.run("logs", server.container, check=False)
            raise AssertionError(f"serve exited before it was ready:\n{logs.stdout}{logs.stderr}")
        try:
            if server.get("/ping").status == 200:
                return
        except (ConnectionError, http.client.HTTPException, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"/ping did not answer 200 within {READY_TIMEOUT_S:.0f} s")


@contextmanager
def running_server(
    engine: Engine,
    image: str,
    model_dir: Path,
    env: Mapping[str, str] = {},
    container_port: int = 8080,
    docker_options: Sequence[str] = (),
) -> Iterator[Server]:
    """`docker run -p 127.0.0.1::PORT -v MODEL:/opt/ml/model:ro [OPTIONS] IMAGE serve`, ready."""
    options = [*docker_options, *(f"--env={name}={value}" for name, value in env.items())]
    container = engine.run(
        "run", "--detach",
        f"--publish=127.0.0.1::{container_port}",
        f"--volume={model_dir}:/opt/ml/model:ro",
        *options,
        image, "serve",
    ).stdout.strip()  # fmt: skip
    try:
        server = Server(container, published_port(engine, container, container_port))
        wait_until_ready(engine, server)
        yield server
    finally:
        engine.run("rm", "--force", container, check=False)
