"""The walkthrough runs from a clean state, top to bottom, with the real train and serve."""

from __future__ import annotations

import ast
import os
import socket
import threading
from typing import Any

import boto3
import moto_sagemaker
import nbformat
import pytest
import run_notebook
import sagemaker_walkthrough
from conftest import require_tool

NOTEBOOK = run_notebook.NOTEBOOK
MAX_NOTEBOOK_BYTES = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_of(cell: Any) -> str:
    """Everything a code cell printed."""
    return "".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "")
        for output in cell.get("outputs", [])
    )


def cell_after(notebook: Any, heading: str, index: int = 0) -> Any:
    """The index-th code cell after the markdown cell that contains `heading`."""
    cells = notebook.cells
    start = next(
        i for i, c in enumerate(cells) if c.cell_type == "markdown" and heading in c.source
    )
    return [c for c in cells[start + 1 :] if c.cell_type == "code"][index]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook with its outputs cleared, then executed as a reader would, without AWS."""
    require_tool("nginx")
    require_tool("curl")
    port = free_port()
    environ = {
        "WALKTHROUGH_PORT": str(port),
        "WALKTHROUGH_WORK_DIR": str(tmp_path_factory.mktemp("walkthrough")),
        "WALKTHROUGH_IMAGE": "",
        "RUN_ON_SAGEMAKER": "",
    }
    notebook = run_notebook.run(environ={**os.environ, **environ})
    notebook.metadata["port"] = port
    return notebook


def test_every_cell_runs_without_an_error(executed: Any) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


def test_part1_shows_the_model_module(executed: Any) -> None:
    module = text_of(cell_after(executed, "### Where your own model goes"))
    assert "TRUSTED_TYPES = " in module
    assert "def estimator():" in module
    assert "Change this file" not in module, "the module's docstring is left out"


def test_training_prints_the_metric_lines(executed: Any) -> None:
    log = text_of(cell_after(executed, "### Train"))
    assert "validation:accuracy=" in log
    assert "exit status: 0" in log


def test_the_model_directory_holds_the_tree_and_its_metadata(executed: Any) -> None:
    listing = text_of(cell_after(executed, "### Train", 1))
    assert "['metadata.json', 'model.skops', 'tree.npz']" in listing
    assert 'estimator: "DecisionTreeClassifier"' in listing
    assert 'kind: "classifier"' in listing
    assert 'classes: ["setosa", "versicolor", "virginica"]' in listing
    assert '"validation:accuracy": ' in listing


def test_csv_and_json_predictions_are_the_expected_labels(executed: Any) -> None:
    csv = text_of(cell_after(executed, "### Predict"))
    assert csv.split() == ["setosa", "versicolor", "virginica"]
    json_answer = text_of(cell_after(executed, "The same rows as JSON"))
    assert all(label in json_answer for label in csv.split())


def test_the_held_out_file_gets_one_prediction_per_row_and_a_high_accuracy(executed: Any) -> None:
    batch = text_of(cell_after(executed, "### A batch-style prediction"))
    assert "200 text/csv 30 rows in, 30 predictions out" in batch
    evaluation = cell_after(executed, "### Evaluate")
    accuracy = float(text_of(evaluation).split("accuracy on the held-out rows:")[1].split()[0])
    assert accuracy >= 0.9
    plots = [
        o
        for c in (evaluation, cell_after(executed, "### Evaluate", 1))
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(plots) == 2


def test_a_verbose_request_answers_the_probabilities(executed: Any) -> None:
    lines = text_of(cell_after(executed, "### Probabilities")).splitlines()
    assert lines[0] == "200 application/json"
    records = [ast.literal_eval(line) for line in lines[1:]]
    assert [r["predicted_label"] for r in records] == ["setosa", "versicolor", "virginica"]
    for record in records:
        assert record["labels"] == ["setosa", "versicolor", "virginica"]
        assert sum(record["probabilities"]) == pytest.approx(1)
        assert record["probability"] == max(record["probabilities"])


def test_rows_with_a_missing_value_are_predicted(executed: Any) -> None:
    csv, json_answer = text_of(cell_after(executed, "### Missing values")).splitlines()
    assert csv == "200 text/csv ['versicolor', 'versicolor']"
    assert json_answer.startswith("200 application/json [{'predicted_label': 'versicolor'")


def test_a_bad_request_shows_the_400_and_its_message(executed: Any) -> None:
    answer = text_of(cell_after(executed, "### A bad request"))
    assert answer.startswith("400 application/json")
    assert "row 2" in answer


def test_the_server_is_stopped_at_the_end(executed: Any) -> None:
    assert "server exit status: 0" in text_of(cell_after(executed, "### Stop the server"))
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", executed.metadata["port"]))


def test_without_opt_in_each_sagemaker_cell_prints_one_skipped_line(executed: Any) -> None:
    part3 = next(i for i, c in enumerate(executed.cells) if "## Part 3" in c.source)
    code = [c for c in executed.cells[part3:] if c.cell_type == "code"]
    assert len(code) >= 7
    for cell in code:
        lines = text_of(cell).splitlines()
        assert len(lines) == 1 and lines[0].startswith("Skipped: "), cell.source


def test_the_committed_notebook_carries_the_outputs_of_one_clean_local_run() -> None:
    """So that it reads well on GitHub: every cell run once, in order, without errors; small."""
    assert NOTEBOOK.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    part3 = next(i for i, c in enumerate(notebook.cells) if "## Part 3" in c.source)
    sagemaker_cells = [c for c in notebook.cells[part3:] if c.cell_type == "code"]
    assert all(text_of(c).startswith("Skipped: ") for c in sagemaker_cells), "no AWS output"


def fake_transform_output(moto_url: str, stop: threading.Event) -> None:
    """Play the platform's part that moto does not: write each transform job's output file."""
    session = boto3.Session("testing", "testing", region_name="us-east-1")
    sagemaker = session.client("sagemaker", endpoint_url=moto_url)
    s3 = session.client("s3", endpoint_url=moto_url)
    done: set[str] = set()
    while not stop.wait(0.05):
        for job in sagemaker.list_transform_jobs()["TransformJobSummaries"]:
            name = job["TransformJobName"]
            if name in done:
                continue
            described = sagemaker.describe_transform_job(TransformJobName=name)
            source = described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, key = source.removeprefix("s3://").split("/", 1)
            rows = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
            output = described["TransformOutput"]["S3OutputPath"].removeprefix(f"s3://{bucket}/")
            body = "".join("setosa\n" for _ in rows)
            s3.put_object(Bucket=bucket, Key=f"{output}/{key.rsplit('/', 1)[1]}.out", Body=body)
            done.add(name)


@pytest.fixture(scope="module")
def executed_on_moto(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """The notebook executed with Part 3 opted in, against moto; and what moto holds afterwards."""
    require_tool("nginx")
    require_tool("curl")
    with moto_sagemaker.server() as url:
        environ = {k: v for k, v in os.environ.items() if k not in moto_sagemaker.UNSET}
        environ |= moto_sagemaker.environment(url, tmp_path_factory.mktemp("aws"))
        environ |= {
            "WALKTHROUGH_PORT": str(free_port()),
            "WALKTHROUGH_WORK_DIR": str(tmp_path_factory.mktemp("walkthrough")),
            "WALKTHROUGH_IMAGE": "",
            "WALKTHROUGH_POLL_SECONDS": "1",
        }
        stop = threading.Event()
        platform = threading.Thread(target=fake_transform_output, args=(url, stop))
        platform.start()
        try:
            notebook = run_notebook.run(environ=environ)
        finally:
            stop.set()
            platform.join()
        client = boto3.client(
            "sagemaker",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        left = {
            "endpoints": client.list_endpoints()["Endpoints"],
            "configs": client.list_endpoint_configs()["EndpointConfigs"],
            "models": client.list_models()["Models"],
            "training": [
                client.describe_training_job(TrainingJobName=job["TrainingJobName"])
                for job in client.list_training_jobs()["TrainingJobSummaries"]
            ],
        }
    return notebook, left


def test_opted_in_the_sagemaker_cells_run_and_leave_nothing_behind(
    executed_on_moto: tuple[Any, dict[str, Any]],
) -> None:
    """Part 3's cells, run against moto: every step runs, and clean-up deletes all it made."""
    notebook, left = executed_on_moto
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "Skipped" not in "".join(text_of(c) for c in code)
    # The training job got what `train --metric-definitions` prints, none written by hand.
    training = text_of(cell_after(notebook, "### Upload the data and train", 1))
    printed = [
        ast.literal_eval(line) for line in training.splitlines() if line.startswith("{'Name'")
    ]
    assert printed == sagemaker_walkthrough.metric_definitions()
    assert "batch accuracy:" in text_of(cell_after(notebook, "### Batch transform"))
    assert "'leaves-3': 50" in text_of(cell_after(notebook, "### A/B test", 1))
    cleanup = text_of(cell_after(notebook, "### Clean up")).splitlines()
    # moto's endpoint makes botocore log "Found endpoint for s3"; only the deleted lines count.
    assert len([line for line in cleanup if line.startswith("deleted ")]) == 7
    assert left["endpoints"] == left["configs"] == left["models"] == []
    leaves = sorted(job["HyperParameters"]["max_leaf_nodes"] for job in left["training"])
    assert leaves == ["3", "5"]
