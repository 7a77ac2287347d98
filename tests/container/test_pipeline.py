"""An inference pipeline: two containers of the image on one host, as SageMaker runs a serial one.

SageMaker starts a pipeline's containers on one instance, in one network namespace, each told its
port by SAGEMAKER_BIND_TO_PORT; they share the instance's CPUs and memory. Here the second shares
the first's network (`--network container:FIRST`), each has one CPU and 512 MiB, and the first's
answer is the second's request, as the pipeline passes it on: the first answers the probability
of its label (the iris tree), the second, trained here on one feature, says whether that
probability is high.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .conftest import TEST_DIR, run_training
from .engine import Engine
from .serving import Server, published_port, wait_until_ready

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n6.3,2.5,4.9,1.5\n"
"""Iris rows: a setosa, a virginica, and two versicolors near the border."""
FIRST_PORT, SECOND_PORT = 8080, 8081
SHARE = ("--cpus=1", "--memory=512m")
"""Each container's share of the instance."""
SURE = 0.99
"""The iris tree (5 leaves) is sure of the setosa alone: the other rows get 0.97."""
STOP_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def confidence_model(engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree trained by the image on one feature, a probability: "sure" from SURE up."""
    case = tmp_path_factory.mktemp("confidence")
    shutil.copytree(TEST_DIR / "input" / "config", case / "input" / "config")
    config = case / "input" / "config"
    (config / "hyperparameters.json").write_text("{}")
    (config / "inputdataconfig.json").write_text(
        json.dumps({"training": {"ContentType": "text/csv", "TrainingInputMode": "File"}})
    )
    data = case / "input" / "data" / "training"
    data.mkdir(parents=True)
    rows = [(p / 100, "sure" if p / 100 >= SURE else "unsure") for p in range(101)]
    (data / "confidence.csv").write_text("".join(f"{label},{p}\n" for p, label in rows))
    result = run_training(engine, image, case)
    assert result.returncode == 0, result.stdout + result.stderr
    return case / "model"


@contextmanager
def pipeline(
    engine: Engine, image: str, first_model: Path, second_model: Path
) -> Iterator[tuple[Server, Server]]:
    """Both containers running and answering /ping: the first publishes both ports, since the
    second lives in its network namespace."""
    with ExitStack() as stack:
        first = engine.run(
            "run", "--detach", *SHARE,
            f"--publish=127.0.0.1::{FIRST_PORT}", f"--publish=127.0.0.1::{SECOND_PORT}",
            f"--volume={first_model}:/opt/ml/model:ro",
            f"--env=SAGEMAKER_BIND_TO_PORT={FIRST_PORT}",
            "--env=SAGEMAKER_INFERENCE_OUTPUT=probability",
            image, "serve",
        ).stdout.strip()  # fmt: skip
        stack.callback(engine.run, "rm", "--force", first, check=False)
        second = engine.run(
            "run", "--detach", *SHARE,
            f"--network=container:{first}",
            f"--volume={second_model}:/opt/ml/model:ro",
            f"--env=SAGEMAKER_BIND_TO_PORT={SECOND_PORT}",
            image, "serve",
        ).stdout.strip()  # fmt: skip
        # Removed first: the first's network namespace is the second's.
        stack.callback(engine.run, "rm", "--force", second, check=False)
        servers = (
            Server(first, published_port(engine, first, FIRST_PORT)),
            Server(second, published_port(engine, first, SECOND_PORT)),
        )
        for server in servers:
            wait_until_ready(engine, server)
        yield servers


def test_two_containers_serve_side_by_side_and_the_first_answer_feeds_the_second(
    engine: Engine, image: str, model_dir: Path, confidence_model: Path
) -> None:
    with pipeline(engine, image, model_dir, confidence_model) as (first, second):
        answer = first.post("/invocations", ROWS, "text/csv", accept="text/csv")
        assert answer.status == 200, answer.body
        # The pipeline passes it on as the next request's Content-Type: a bare media type.
        assert answer.headers["Content-Type"] == "text/csv"
        probabilities = [float(line) for line in answer.body.decode().splitlines()]
        assert len(probabilities) == 4
        assert min(probabilities) < SURE, "every row was sure: the second model proves nothing"

        passed_on = second.post("/invocations", answer.body, answer.headers["Content-Type"])
        assert passed_on.status == 200, passed_on.body
        expected = ["sure" if p >= SURE else "unsure" for p in probabilities]
        assert passed_on.body.decode().splitlines() == expected

        for server in (second, first):
            engine.run("stop", "--time", str(STOP_TIMEOUT_S), server.container)
        for server in (first, second):
            lines = [
                json.loads(line)
                for line in engine.run("logs", server.container).stderr.splitlines()
            ]
            settings = next(line["settings"] for line in lines if line["message"] == "settings")
            # Each counts its own share of the host: one CPU, 512 MiB, so one worker.
            assert (settings["memory_limit_mib"], settings["workers"]) == (512, 1)
            state = engine.run("inspect", "--format", "{{.State.ExitCode}}", server.container)
            assert state.stdout.strip() == "0", lines[-20:]
