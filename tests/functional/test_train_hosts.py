"""`train` on several hosts: the leader trains, the others exit 0 only after the leader has exited.

Two hosts on this machine: the leader is "127.0.0.1" and the other "localhost" (sorted as text,
127.0.0.1 comes first), two names that resolve here as algo-1 and algo-2 do on SageMaker.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from serving import free_port

from training_job import Job

LEADER, OTHER = "127.0.0.1", "localhost"
WAIT_S = 30


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[[str], Job]:
    port = str(free_port())

    def make(host: str) -> Job:
        job = Job(tmp_path / host, {"BYOC_LEADER_PORT": port, "BYOC_LEADER_TIMEOUT_S": "60"})
        job.iris().config("resourceconfig.json", {"current_host": host, "hosts": [OTHER, LEADER]})
        return job

    return make


def read_until(process: subprocess.Popen[str], text: str) -> str:
    """The output of `process` up to the first line holding `text`."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    pytest.fail(f"train exited with {process.wait()} before printing {text!r}:\n{''.join(seen)}")


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    assert process.stdout is not None
    output = process.stdout.read()
    return process.wait(timeout=WAIT_S), output


def test_the_other_host_waits_for_the_leader_to_train_then_exits_0(
    make_job: Callable[[str], Job],
) -> None:
    leader, other = make_job(LEADER), make_job(OTHER)
    waiting = other.start()
    read_until(waiting, f"waiting for {LEADER} to finish")

    assert waiting.poll() is None
    trained = leader.run(timeout=WAIT_S)
    code, output = finish(waiting)

    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert leader.metadata()["training_rows"] == 120
    assert code == 0
    assert f"{LEADER} has finished: exiting 0" in output
    assert not other.failure.exists()
    assert not other.model_dir.exists() or not any(other.model_dir.iterdir())


def test_the_leader_waits_after_training_until_the_other_host_has_reached_it(
    make_job: Callable[[str], Job],
) -> None:
    leader, other = make_job(LEADER), make_job(OTHER)
    training = leader.start()
    read_until(training, "model saved")

    assert training.poll() is None
    waited = other.run(timeout=WAIT_S)

    assert finish(training)[0] == 0
    assert waited.returncode == 0
    assert f"{LEADER} has finished" in waited.stdout


def test_a_leader_that_fails_ends_the_wait_and_only_the_leader_fails(
    make_job: Callable[[str], Job],
) -> None:
    leader, other = make_job(LEADER), make_job(OTHER)
    leader.data("training/iris.csv", "setosa,1,2,3,4\n")  # one class: the fit fails
    waiting = other.start()
    read_until(waiting, "waiting for")

    failed = leader.run(timeout=WAIT_S)
    code, output = finish(waiting)

    assert failed.returncode == 2
    assert "single class" in leader.failure_reason()
    assert code == 0
    assert f"{LEADER} has finished" in output
    assert not other.failure.exists()


def test_sigterm_to_a_waiting_host_exits_0_without_a_failure_file(
    make_job: Callable[[str], Job],
) -> None:
    other = make_job(OTHER)
    waiting = other.start()
    read_until(waiting, "waiting for")

    waiting.send_signal(signal.SIGTERM)
    code, output = finish(waiting)

    assert code == 0
    assert "SIGTERM received while waiting for the other hosts: exiting 0" in output
    assert not other.failure.exists()


def test_a_leader_never_reached_ends_the_wait_after_the_timeout_with_exit_0(
    make_job: Callable[[str], Job],
) -> None:
    other = make_job(OTHER)
    other.environment["BYOC_LEADER_TIMEOUT_S"] = "1"

    result = other.run(timeout=WAIT_S)

    assert result.returncode == 0
    assert f"{LEADER} could not be reached on port" in result.stdout
    assert "within 1 s" in result.stdout
