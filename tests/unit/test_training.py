"""The job's steps in-process: what reaches the failure file and the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

import training
from environment import Paths
from failure import EXIT_INPUT_ERROR
from training_job import Job, rows


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path)


def run(job: Job) -> int:
    return training.main(Paths(job.base))


def test_a_good_job_exits_0_with_a_model_and_metrics(job: Job) -> None:
    job.data("training/a.csv", rows(200, seed=1))
    job.data("validation/a.csv", rows(50, seed=2))

    assert run(job) == 0
    assert not job.failure.exists()
    assert set(job.metrics()) == {
        "train:accuracy",
        "train:f1_macro",
        "validation:accuracy",
        "validation:f1_macro",
    }
    assert job.metadata()["classes"] == ["class_0", "class_1"]


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"training/a.csv": "same,1,2\nsame,3,4\n"},
            "The training data has a single class ('same' in all 2 rows)",
        ),
        (
            {"training/a.csv": rows(5) + "class_1,0.5\n"},
            "training/a.csv, row 6: 2 columns where row 1 has 4",
        ),
        ({"training/a.json": "{}"}, 'Channel "training" has no data files'),
        ({"data/a.csv": rows(5)}, 'The job has no "training" channel (channels found: "data")'),
        (
            {"training/a.csv": rows(5), "validation/a.csv": "class_0,1\n"},
            "The validation data has 1 features but the training data has 3",
        ),
    ],
)
def test_bad_input_exits_2_with_the_reason_first_in_the_failure_file(
    job: Job, files: dict[str, str], reason: str
) -> None:
    for name, content in files.items():
        job.data(name, content)

    assert run(job) == EXIT_INPUT_ERROR
    assert job.failure_reason().startswith(reason)
    assert not (job.model_dir / "metadata.json").exists()
