"""`train` as SageMaker runs it: an executable on PATH, in a process, on an /opt/ml tree."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import stat
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training_job import Job, rows

CSV = {
    "ContentType": "text/csv",
    "TrainingInputMode": "File",
    "S3DistributionType": "FullyReplicated",
}


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path / "opt_ml")


def test_iris_trains_a_model_prints_scrapable_metrics_and_leaves_no_failure(job: Job) -> None:
    job.iris().channels(training=CSV, validation=CSV)
    job.hyperparameters({"max_leaf_nodes": "5"})
    job.config("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]})

    result = job.run()

    assert result.returncode == 0, result.stderr
    assert not job.failure.exists()
    metadata = job.metadata()
    assert metadata["estimator"] == "DecisionTreeClassifier"
    assert metadata["kind"] == "classifier"
    assert metadata["n_features"] == 4
    assert metadata["feature_names"] == ["feature_1", "feature_2", "feature_3", "feature_4"]
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["label_column"] is None
    assert metadata["training_rows"] == 120
    assert metadata["hyperparameters"]["max_leaf_nodes"] == 5
    printed = job.run("--metric-definitions")
    assert printed.returncode == 0, printed.stderr
    definitions = {d["Name"]: d["Regex"] for d in json.loads(printed.stdout)}
    assert set(definitions) == set(job.metrics())
    for name, regex in definitions.items():
        scraped = re.findall(regex, result.stdout)
        assert len(scraped) == 1, name
        assert float(scraped[0]) == pytest.approx(job.metrics()[name], abs=1e-4)
    assert 0.9 <= job.metrics()["validation:accuracy"] <= 1.0
    assert "training: read 120 rows x 4 features from 1 file in" in result.stdout


def test_train_as_the_first_argument_is_accepted_and_anything_else_is_refused(job: Job) -> None:
    job.iris()

    assert job.run("train").returncode == 0
    refused = job.run("serve")
    assert refused.returncode == 2
    assert "usage: train" in refused.stderr


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        pytest.param(
            {"max_depth": "3", "criterion": '"entropy"', "max_features": '"sqrt"'},
            {"max_depth": 3, "criterion": "entropy", "max_features": "sqrt"},
            id="json-encoded (SDK v2 frameworks, tuning)",
        ),
        pytest.param(
            {
                "max_depth": "3",
                "criterion": "entropy",
                "max_leaf_nodes": "None",
                "sagemaker_program": '"train.py"',
                "sagemaker_region": "us-east-1",
                "_tuning_objective_metric": "validation:accuracy",
            },
            {"max_depth": 3, "criterion": "entropy", "max_leaf_nodes": None},
            id="str() (SDK v2 Estimator), with platform keys",
        ),
        pytest.param(
            {"max_depth": 3, "min_samples_leaf": 0.05, "class_weight": {"setosa": 2}},
            {"max_depth": 3, "min_samples_leaf": 0.05, "class_weight": {"setosa": 2.0}},
            id="raw JSON values",
        ),
    ],
)
def test_every_hyperparameter_encoding_trains_with_typed_values(
    job: Job, encoded: dict, expected: dict
) -> None:
    job.iris().hyperparameters(encoded)

    result = job.run()

    assert result.returncode == 0, result.stderr
    used = job.metadata()["hyperparameters"]
    assert {name: used[name] for name in expected} == expected
    assert used["random_state"] == 0


def test_a_bad_hyperparameter_fails_naming_key_value_and_what_is_accepted(job: Job) -> None:
    job.iris().hyperparameters({"max_depth": "-3"})

    result = job.run()

    assert result.returncode == 2
    reason = job.failure_reason()
    assert 'max_depth="-3"' in reason
    assert "must be an int in the range [1, inf) or None" in reason
    assert not (job.model_dir / "metadata.json").exists()


@pytest.mark.parametrize("name", ["resourceconfig.json", "resourceConfig.json"])
def test_both_resource_file_names_are_read(job: Job, name: str) -> None:
    job.iris().config(name, {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    job.environment["BYOC_LEADER_TIMEOUT_S"] = "0.5"  # algo-1 is no host here

    result = job.run()

    assert result.returncode == 0
    assert "algo-1 trains the model" in result.stdout
    assert not job.model_dir.exists() or not any(job.model_dir.iterdir())


def test_the_leader_of_several_hosts_trains_with_the_current_resource_file(job: Job) -> None:
    job.iris().channels(training=CSV)
    hosts = ["algo-10", "algo-2"]
    job.config(
        "resourceconfig.json",
        {
            "current_host": "algo-10",
            "current_instance_type": "ml.m5.xlarge",
            "current_group_name": "homogeneousCluster",
            "hosts": hosts,
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": "ml.m5.xlarge",
                    "hosts": list(reversed(hosts)),
                }
            ],
            "network_interface_name": "eth0",
            "topology": None,
        },
    )
    job.environment["BYOC_LEADER_TIMEOUT_S"] = "0.5"  # algo-2 is no host here

    result = job.run()

    assert result.returncode == 0, result.stderr
    assert job.metadata()["training_rows"] == 120


def test_sharded_data_on_several_hosts_fails_on_every_host(job: Job) -> None:
    job.iris().channels(training={**CSV, "S3DistributionType": "ShardedByS3Key"})
    job.config("resourceconfig.json", {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})

    assert job.run().returncode == 2
    assert "FullyReplicated" in job.failure_reason()


def test_manifest_files_are_never_channels(job: Job) -> None:
    job.iris()
    job.data("training-manifest", '[{"prefix": "s3://bucket/"}, "iris.csv"]')
    job.data("validation-manifest/data.csv", "not a channel")

    result = job.run()

    assert result.returncode == 0, result.stderr
    assert "ignoring channels" not in result.stdout
    assert "validation: read 30 rows" in result.stdout


def test_nested_and_gzip_csv_files_are_all_read(job: Job) -> None:
    job.data("training/2024/01/part-0.csv", rows(30, seed=1))
    job.data("training/2024/02/part-1.csv.gz", gzip.compress(rows(40, seed=2).encode()))
    job.data("training/part-2.csv", rows(50, seed=3))
    job.data("training/README.txt", "not data")
    job.data("training/.hidden/part-3.csv", "not,a,row\n")

    result = job.run()

    assert result.returncode == 0, result.stderr
    assert job.metadata()["training_rows"] == 120
    assert "from 3 files" in result.stdout


def test_parquet_files_with_a_named_label_column(job: Job) -> None:
    table = pa.table(
        {
            "width": [1.0, 2.0, 3.0, 4.0] * 10,
            "kind": ["a", "a", "b", "b"] * 10,
            "n": [1, 2, 3, 4] * 10,
        }
    )
    path = job.base / "input" / "data" / "training" / "part.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    job.hyperparameters({"label_column": "kind"})

    result = job.run()

    assert result.returncode == 0, result.stderr
    metadata = job.metadata()
    assert metadata["label_column"] == "kind"
    assert metadata["feature_names"] == ["width", "n"]
    assert metadata["classes"] == ["a", "b"]


def test_pipe_mode_reads_the_channel_fifo(job: Job) -> None:
    job.channels(training={**CSV, "TrainingInputMode": "Pipe"})
    fifo = job.base / "input" / "data" / "training_0"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    data = rows(5000, seed=4).encode()

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            for start in range(0, len(data), 4096):
                pipe.write(data[start : start + 4096])

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    result = job.run()
    feeder.join(timeout=5)

    assert result.returncode == 0, result.stderr
    assert job.metadata()["training_rows"] == 5000


def test_read_only_input_is_left_unchanged(job: Job) -> None:
    job.iris().channels(training=CSV, validation=CSV)
    job.hyperparameters({})
    input_dir = job.base / "input"
    for path in [input_dir, *input_dir.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def snapshot() -> list[tuple[str, int, int]]:
        return sorted(
            (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in input_dir.rglob("*")
        )

    before = snapshot()
    result = job.run()

    assert result.returncode == 0, result.stderr
    assert snapshot() == before


def test_malformed_csv_fails_with_the_file_row_and_column_first(job: Job) -> None:
    job.data("training/a.csv", rows(100))
    job.data("training/b.csv", rows(10) + "class_1,0.5,oops,0.7\n" + rows(10))

    assert job.run().returncode == 2
    assert job.failure_reason().startswith(
        "training/b.csv, row 11, column 3: 'oops' is not a number"
    )


def test_a_long_value_is_cut_so_that_what_is_accepted_fits_the_failure_reason(job: Job) -> None:
    long_value = "é" * 2000
    job.iris().hyperparameters({"criterion": long_value})

    assert job.run().returncode == 2
    reason = job.failure_reason()
    assert len(reason.encode()) <= 1024
    assert reason.startswith('Hyperparameter criterion="éééé')
    assert "... (2002 characters) is not valid" in reason
    assert "must be a str among {" in reason and "'gini'" in reason


def test_an_existing_failure_file_is_not_overwritten(job: Job) -> None:
    job.iris().hyperparameters({"max_depth": "zero"})
    job.failure.parent.mkdir(parents=True)
    job.failure.write_text("an earlier reason\n")

    assert job.run().returncode == 2
    assert job.failure.read_text() == "an earlier reason\n"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_mid_fit_stops_within_5_seconds_without_model_or_orphans(job: Job) -> None:
    # Thousands of classes make every split slow: the fit takes far longer than the test.
    job.data("training/slow.csv", rows(40000, features=10, classes=2000, seed=5))
    process = job.start()
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if line.startswith("fitting"):
            break
    else:
        pytest.fail("train never started fitting:\n" + "".join(output))
    workers = _children(process.pid)
    assert workers

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    elapsed = time.monotonic() - signalled
    output.append(process.stdout.read())

    assert elapsed < 5, elapsed
    assert process.returncode == 128 + signal.SIGTERM
    assert "fitted in" not in "".join(output)
    assert job.failure_reason().startswith("Training was stopped by SIGTERM")
    assert not job.model_dir.exists() or not any(job.model_dir.iterdir())
    assert not any(_running(pid) for pid in workers)
