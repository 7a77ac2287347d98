"""`docker run -p 127.0.0.1::8080 -v MODEL:/opt/ml/model:ro IMAGE serve`: the hosting contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from in_flight import stop_with_requests_in_flight

from .engine import Engine
from .serving import Server, running_server

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
"""One setosa and one virginica from the iris data the model was trained on."""

STOP_TIMEOUT_S = 30
"""SageMaker sends SIGKILL this long after SIGTERM."""


@pytest.fixture(scope="module")
def server(engine: Engine, image: str, model_dir: Path) -> Iterator[Server]:
    with running_server(engine, image, model_dir) as running:
        yield running


def test_ping_answers_200(server: Server) -> None:
    assert server.get("/ping").status == 200


def test_csv_rows_get_one_prediction_each_in_order(server: Server) -> None:
    answer = server.post("/invocations", ROWS, "text/csv", accept="text/csv")
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "text/csv"
    assert answer.body.decode().splitlines() == ["setosa", "virginica"]


def test_json_rows_get_json_predictions(server: Server) -> None:
    body = json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).encode()
    answer = server.post("/invocations", body, "application/json", accept="application/json")
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"predictions": ["setosa", "virginica"]}


def test_a_body_over_the_6_mb_limit_is_answered_413(server: Server) -> None:
    body = ROWS * (6 * 1024 * 1024 // len(ROWS) + 1)
    assert server.post("/invocations", body, "text/csv").status == 413


def test_pid_1_is_the_serve_program_not_a_shell(engine: Engine, server: Server) -> None:
    """SIGTERM from `docker stop` reaches serve only if serve itself is PID 1."""
    argv = engine.run("exec", server.container, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert Path(argv[0]).name not in ("sh", "bash", "dash")
    assert "/opt/program/serve" in argv


def test_sagemaker_bind_to_port_moves_the_listener(
    engine: Engine, image: str, model_dir: Path
) -> None:
    """Inference pipelines choose the port; the image's label allows it."""
    env = {"SAGEMAKER_BIND_TO_PORT": "9090"}
    with running_server(engine, image, model_dir, env=env, container_port=9090) as moved:
        answer = moved.post("/invocations", ROWS, "text/csv", accept="text/csv")
        assert answer.status == 200
        ports = listening_ports(engine, moved.container)
        assert 9090 in ports
        assert 8080 not in ports


def listening_ports(engine: Engine, container: str) -> set[int]:
    """The TCP ports something listens on in the container (state 0A in /proc/net/tcp*)."""
    table = engine.run(
        "exec", container, "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true"
    ).stdout
    rows = [line.split() for line in table.splitlines()[1:]]
    return {int(row[1].rsplit(":", 1)[1], 16) for row in rows if len(row) > 3 and row[3] == "0A"}


def test_docker_stop_answers_every_request_in_flight_then_exits(
    engine: Engine, image: str, model_dir: Path
) -> None:
    """SIGTERM: requests already sent are all answered 200, and the container exits well within
    SageMaker's 30 s."""
    big = ROWS * 100_000
    with running_server(engine, image, model_dir) as server:
        stopping = stop_with_requests_in_flight(
            server.port,
            big,
            lambda: engine.run("stop", "--time", str(STOP_TIMEOUT_S), server.container),
        )

        assert sorted(status for status, _ in stopping.answers) == [200] * 8
        assert any(at > stopping.began for _, at in stopping.answers), (
            "no request was still in flight"
        )
        assert stopping.ended - stopping.began < STOP_TIMEOUT_S
        state = json.loads(
            engine.run("inspect", "--format", "{{json .State}}", server.container).stdout
        )
        assert state["ExitCode"] != 137, "serve was killed, it did not stop on SIGTERM"
