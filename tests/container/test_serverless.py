"""Serverless inference: `serve` in a read-only container, as an unprivileged user, in 1 GB.

    docker run --read-only --tmpfs /tmp --user 1000:1000 --memory 1g IMAGE serve

A read-only root file system refuses every write outside the tmpfs, so a clean run (answers, a
clean stop, no error in the logs, nothing in `docker diff`) proves that nothing writes there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .engine import Engine
from .serving import Server, running_server

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
"""One setosa and one virginica from the iris data the model was trained on."""
SERVERLESS = ("--read-only", "--tmpfs=/tmp", "--user=1000:1000", "--memory=1g")
SHM_NOT_WRITABLE = ("--mount=type=tmpfs,destination=/dev/shm,tmpfs-mode=0755",)
"""/dev/shm owned by root and closed to others: gunicorn's default place for its heartbeat files."""
STOP_TIMEOUT_S = 30
"""SageMaker sends SIGKILL this long after SIGTERM."""
CPUS = len(os.sched_getaffinity(0))
"""The engine runs here: a container without --cpus has this machine's CPUs."""
WRITE_ERRORS = ("permission denied", "read-only file system", "errno 13", "errno 30")


def log_lines(engine: Engine, container: str) -> list[dict[str, object]]:
    """Every line the container wrote, stdout and stderr, each parsed as the JSON it must be."""
    logs = engine.run("logs", container)
    return [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines() if line]


def serves_and_stops_cleanly(engine: Engine, server: Server) -> list[dict[str, object]]:
    """Predict, ping, `docker stop`: exit 0, no error and no refused write in the logs, and no
    file changed in the container's own layer. Returns the log lines."""
    answer = server.post("/invocations", ROWS, "text/csv", accept="text/csv")
    assert answer.status == 200, answer.body
    assert answer.body.decode().splitlines() == ["setosa", "virginica"]
    assert server.get("/ping").status == 200

    engine.run("stop", "--time", str(STOP_TIMEOUT_S), server.container)
    state = json.loads(
        engine.run("inspect", "--format", "{{json .State}}", server.container).stdout
    )
    lines = log_lines(engine, server.container)
    assert state["ExitCode"] == 0, lines[-20:]
    problems = [
        line
        for line in lines
        if line["level"] in ("WARNING", "ERROR", "CRITICAL")
        or any(error in json.dumps(line).lower() for error in WRITE_ERRORS)
    ]
    assert problems == []
    # Docker itself makes the model's mount point, and its parents, in the container's layer.
    mount_point = {"C /opt", "A /opt/ml", "A /opt/ml/model"}
    assert set(engine.run("diff", server.container).stdout.splitlines()) <= mount_point
    return lines


def settings_logged(lines: list[dict[str, object]]) -> dict[str, object]:
    return next(line["settings"] for line in lines if line["message"] == "settings")  # type: ignore[misc]


def test_serve_runs_read_only_as_user_1000_in_1_gb(
    engine: Engine, image: str, model_dir: Path
) -> None:
    with running_server(engine, image, model_dir, docker_options=SERVERLESS) as server:
        user = engine.run("exec", server.container, "id", "-u").stdout.strip()
        assert user == "1000"
        lines = serves_and_stops_cleanly(engine, server)
    settings = settings_logged(lines)
    assert settings["memory_limit_mib"] == 1024


def test_serve_runs_where_dev_shm_is_not_writable(
    engine: Engine, image: str, model_dir: Path
) -> None:
    """gunicorn then keeps its workers' heartbeat files in serve's folder on /tmp."""
    options = (*SERVERLESS, *SHM_NOT_WRITABLE)
    with running_server(engine, image, model_dir, docker_options=options) as server:
        shm = engine.run("exec", server.container, "sh", "-c", "touch /dev/shm/x", check=False)
        assert shm.returncode != 0, "/dev/shm was writable: the test proves nothing"
        serves_and_stops_cleanly(engine, server)


@pytest.mark.parametrize(
    ("options", "workers"),
    [
        # 256 MiB holds the reserved 128 MiB but not one worker's 132: one worker nonetheless.
        (("--memory=256m",), 1),
        (("--memory=256m", "--env=SAGEMAKER_MODEL_SERVER_WORKERS=2"), 2),
        # 512 MiB fits two workers, and 1 GB six: then the CPUs decide.
        (("--memory=512m",), min(2, CPUS)),
        (("--memory=1g", "--cpus=1"), 1),
        (("--memory=1g",), min(6, CPUS)),
    ],
)
def test_the_workers_fit_the_container_memory_and_cpus(
    engine: Engine, image: str, options: tuple[str, ...], workers: int
) -> None:
    printed = engine.run("run", "--rm", *options, image, "serve", "--print-settings")
    settings = json.loads(printed.stdout)
    memory = next(option.split("=")[1] for option in options if option.startswith("--memory"))
    assert settings["memory_limit_mib"] == {"256m": 256, "512m": 512, "1g": 1024}[memory]
    assert settings["workers"] == workers
