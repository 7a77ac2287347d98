"""Every example in examples/, and the default model module, trained and served for real.

Each example folder found on disk is a case (with each of its test_dir* folders: the categorical
pipeline trains from CSV and from Parquet), so a new example is tested without changing this file.
A case is trained once, natively with `train` on a copy of its test directory, then served once by
the real `serve` (nginx and gunicorn with two workers, on a free port), and the plumbing's
guarantees are checked against it: every Accept and Content-Type, batch transform's line per
record, errors that name the row, probabilities, missing values, and models that use OpenMP
answering in forked workers.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from itertools import takewhile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import require_tool
from serving import ROOT, Server, children, command_line, start

EXAMPLES = ROOT / "examples"
LOCAL_TEST = ROOT / "local_test"
PROGRAM = ROOT / "container" / "decision_trees"
TRAIN = PROGRAM / "train"
DEFAULT_PREDICTOR = PROGRAM / "predictor.py"

CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
NPY = "application/x-npy"
METRICS = {"classifier": ("accuracy", "f1_macro"), "regressor": ("rmse", "mae", "r2")}
OUTPUTS = ("predicted_label", "probability", "probabilities", "labels")
ENV_OUTPUTS = ("probability", "predicted_label")
"""SAGEMAKER_INFERENCE_OUTPUT of the batch server of a classifier: a subset, out of order."""
MISSING = ("", "NA")
WORKERS = 2
FIRST_ANSWER_SECONDS = 20
"""A server that does not answer its first request in this time fails all its tests at once."""
MAX_FILE_BYTES = 200 * 1024


@dataclass(frozen=True)
class Case:
    """A model module, a test directory it trains on and the rows it predicts."""

    name: str
    predictor: Path
    test_dir: Path
    payload: Path


def example_folders() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def cases() -> list[Case]:
    found = [
        Case("default", DEFAULT_PREDICTOR, LOCAL_TEST / "test_dir", LOCAL_TEST / "payload.csv")
    ]
    for folder in example_folders():
        for test_dir in sorted(p for p in folder.glob("test_dir*") if p.is_dir()):
            name = folder.name if test_dir.name == "test_dir" else f"{folder.name}/{test_dir.name}"
            found.append(Case(name, folder / "predictor.py", test_dir, folder / "payload.csv"))
    return found


CASES = cases()


def load_module(path: Path) -> ModuleType:
    """The model module, imported under a name of its own (the plumbing's `predictor` stays)."""
    name = "example_" + re.sub(r"\W", "_", str(path.relative_to(ROOT)))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def payload_rows(case: Case) -> list[list[Any]]:
    """The payload's cells: None when missing, a float when a number, else the string."""

    def value(cell: str) -> Any:
        if cell in MISSING:
            return None
        try:
            return float(cell)
        except ValueError:
            return cell

    with open(case.payload, newline="") as f:
        return [[value(cell) for cell in row] for row in csv.reader(f)]


def kind(case: Case) -> str:
    """What the module's estimator is, as scikit-learn sees it (not as `train` said)."""
    from sklearn.base import is_classifier

    return "classifier" if is_classifier(load_module(case.predictor).estimator()) else "regressor"


def trains_from_csv_with_missing_values(case: Case) -> bool:
    """The payload has missing cells, and the training data is CSV (the reference fit reads it)."""
    csv_data = not any((case.test_dir / "input" / "data").rglob("*.parquet"))
    return csv_data and any(v is None for row in payload_rows(case) for v in row)


def cases_where(condition: Callable[[Case], bool]) -> Any:
    """`trained` for the cases that meet `condition` only."""
    chosen = [c for c in CASES if condition(c)]
    assert chosen, "no case to test"
    return pytest.mark.parametrize("trained", chosen, ids=[c.name for c in chosen], indirect=True)


@dataclass
class Trained:
    """A case after `train` ran on a copy of its test directory."""

    case: Case
    base_dir: Path
    result: subprocess.CompletedProcess[str]

    @property
    def log(self) -> str:
        return f"{self.result.stdout}\n{self.result.stderr}"

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @cached_property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.model_dir / "metadata.json").read_text())

    @cached_property
    def module(self) -> ModuleType:
        return load_module(self.case.predictor)

    @cached_property
    def kind(self) -> str:
        return kind(self.case)

    @cached_property
    def rows(self) -> list[list[Any]]:
        return payload_rows(self.case)

    @property
    def string_columns(self) -> list[int]:
        """The payload's columns holding a cell that is not a number (nor missing)."""
        width = len(self.rows[0])
        return [i for i in range(width) if any(isinstance(r[i], str) for r in self.rows)]

    @cached_property
    def hyperparameters(self) -> dict[str, Any]:
        path = self.base_dir / "input" / "config" / "hyperparameters.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def channel_files(self, channel: str) -> list[Path]:
        folder = self.base_dir / "input" / "data" / channel
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    @property
    def parquet(self) -> bool:
        return any(p.suffix == ".parquet" for p in self.channel_files("training"))


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    case: Case = request.param
    base_dir = tmp_path_factory.mktemp(re.sub(r"\W", "-", case.name)) / "ml"
    shutil.copytree(case.test_dir / "input", base_dir / "input")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base_dir), "BYOC_PREDICTOR": str(case.predictor)}
    result = subprocess.run(
        [sys.executable, str(TRAIN)], env=env, capture_output=True, text=True, timeout=300
    )
    return Trained(case, base_dir, result)


def serve(trained: Trained, tmp_path: Path, **environ: str) -> Iterator[Server]:
    if trained.result.returncode != 0:
        pytest.fail(f"{trained.case.name} did not train:\n{trained.log[-3000:]}", pytrace=False)
    server = start(
        trained.base_dir, tmp_path, BYOC_PREDICTOR=str(trained.case.predictor), **environ
    )
    try:
        server.wait_ready()
        try:
            status, _, body = invoke(
                server, bodies(trained)["csv"][1], timeout=FIRST_ANSWER_SECONDS
            )
        except TimeoutError:
            pytest.fail(
                f"{trained.case.name}: no answer to the payload within {FIRST_ANSWER_SECONDS} s "
                f"(a library deadlocked in a forked worker?):\n{server.output[-3000:]}",
                pytrace=False,
            )
        assert status == 200, body[:2000]
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The case's model served by two workers: its model uses OpenMP in them, if at all."""
    yield from serve(
        trained, tmp_path_factory.mktemp("serve"), SAGEMAKER_MODEL_SERVER_WORKERS=str(WORKERS)
    )


@pytest.fixture(scope="module")
def batch_server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The case's model served as in a batch transform job; a classifier answers ENV_OUTPUTS."""
    environ = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    if trained.kind == "classifier":
        environ["SAGEMAKER_INFERENCE_OUTPUT"] = ",".join(ENV_OUTPUTS)
    yield from serve(trained, tmp_path_factory.mktemp("batch"), **environ)


# ---------------------------------------------------------------------------- bodies


def csv_body(rows: list[list[Any]]) -> bytes:
    def cell(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else repr(value)

    return "".join(",".join(map(cell, row)) + "\n" for row in rows).encode()


def bodies(trained: Trained) -> dict[str, tuple[str, bytes]]:
    """The payload in every form serving reads, by name: (Content-Type, body)."""
    rows = trained.rows
    names = trained.metadata["feature_names"]
    found = {
        "csv": (CSV, csv_body(rows)),
        "json-lists": (JSON, json.dumps(rows).encode()),
        "json-instances": (JSON, json.dumps({"instances": rows}).encode()),
        "json-objects": (
            JSON,
            json.dumps([dict(zip(names, row, strict=True)) for row in rows]).encode(),
        ),
        "jsonlines": (JSON_LINES, "".join(json.dumps(row) + "\n" for row in rows).encode()),
    }
    if trained.string_columns:
        # A structured array, a field per column: text cannot share a float matrix.
        strings = set(trained.string_columns)
        kinds = [(name, "U64" if i in strings else "f8") for i, name in enumerate(names)]
        missing = ["" if i in strings else math.nan for i in range(len(names))]
        cells = [
            tuple(m if v is None else v for v, m in zip(r, missing, strict=True)) for r in rows
        ]
        array = np.array(cells, dtype=kinds)
    else:
        array = np.array([[math.nan if v is None else v for v in row] for row in rows])
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    found["npy"] = (NPY, buffer.getvalue())
    return found


def invoke(
    server: Server, body: bytes, content_type: str = CSV, accept: str = JSON, timeout: float = 60
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type, "Accept": accept}
    return server.request("POST", "/invocations", body=body, headers=headers, timeout=timeout)


def decode(accept: str, body: bytes, batch: bool = False) -> list[Any]:
    """The records of a response body of type `accept`."""
    if accept == NPY:
        array = np.load(io.BytesIO(body), allow_pickle=False)
        assert array.dtype.kind != "O", array.dtype
        return array.tolist()
    if accept == JSON and not batch:
        document = json.loads(body)
        assert list(document) == ["predictions"], document
        return document["predictions"]
    text = body.decode()
    if not batch:
        assert text.endswith("\n"), text[-200:]
        text = text.removesuffix("\n")
    lines = text.split("\n")
    return lines if accept == CSV else [json.loads(line) for line in lines]


def assert_same(trained: Trained, got: list[Any], expected: list[Any]) -> None:
    """The same predictions, whatever type carried them: equal values, or equal labels' text."""
    if trained.kind == "regressor":
        assert [float(p) for p in got] == pytest.approx([float(p) for p in expected], rel=1e-6)
    else:
        assert [str(p) for p in got] == [str(p) for p in expected]


def predict(server: Server, trained: Trained, accept: str = JSON) -> list[Any]:
    status, headers, body = invoke(server, bodies(trained)["csv"][1], accept=accept)
    assert status == 200, body[:2000]
    assert headers["Content-Type"].split(";")[0] == accept
    return decode(accept, body)


# ---------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("folder", example_folders(), ids=lambda p: p.name)
def test_an_example_holds_what_a_user_changes(folder: Path) -> None:
    """predictor.py, README.md, payload.csv, a complete test_dir; small files; pins installed."""
    for name in ("predictor.py", "README.md", "payload.csv"):
        assert (folder / name).is_file(), f"{folder.name} has no {name}"
    config = folder / "test_dir" / "input" / "config"
    for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
        json.loads((config / name).read_text())
    assert any((folder / "test_dir" / "input" / "data" / "training").rglob("*.*"))
    for path in folder.rglob("*"):
        if path.is_file() and not {"model", "output"} & set(path.relative_to(folder).parts):
            assert path.stat().st_size < MAX_FILE_BYTES, f"{path} is too big for an example"
    requirements = folder / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.exists() else []
    for line in (x.split("#", 1)[0].strip() for x in lines):
        if line:
            name, _, version = line.partition("==")
            assert version, f"{requirements}: {line!r} is not pinned with =="
            # The dev environment (requirements-dev.txt) tests the example with its own pins.
            assert importlib.metadata.version(name.split("[")[0]) == version, line


def test_train_writes_the_model_the_metrics_and_the_metadata(trained: Trained) -> None:
    assert trained.result.returncode == 0, trained.log[-3000:]
    assert not (trained.base_dir / "output" / "failure").exists()
    assert f"model module: {trained.case.predictor}" in trained.result.stdout

    channels = ["train"] + (["validation"] if trained.channel_files("validation") else [])
    metrics = json.loads((trained.base_dir / "output" / "data" / "metrics.json").read_text())
    expected = {f"{c}:{m}" for c in channels for m in METRICS[trained.kind]}
    assert set(metrics) == expected
    assert all(math.isfinite(v) for v in metrics.values()), metrics

    metadata = trained.metadata
    assert metadata["kind"] == trained.kind
    width = len(trained.rows[0])
    assert metadata["n_features"] == len(metadata["feature_names"]) == width
    assert metadata["string_columns"] == trained.string_columns
    if trained.parquet:
        schema = pq.read_schema(trained.channel_files("training")[0])
        label = trained.hyperparameters.get("label_column", schema.names[0])
        assert metadata["feature_names"] == [n for n in schema.names if n != label]
    else:
        assert metadata["feature_names"] == [f"feature_{i}" for i in range(1, width + 1)]
    if trained.kind == "classifier":
        assert sorted(map(str, metadata["classes"])) == sorted(map(str, training_labels(trained)))
    else:
        assert "classes" not in metadata
    assert metadata["files"], "no model file"
    for name, digest in metadata["files"].items():
        content = (trained.model_dir / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest, name


def training_labels(trained: Trained) -> set[Any]:
    labels: set[Any] = set()
    for path in trained.channel_files("training"):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            label = trained.hyperparameters.get("label_column", table.column_names[0])
            labels.update(table.column(label).to_pylist())
        else:
            labels.update(pd.read_csv(path, header=None, dtype=str)[0])
    return labels


def test_ping_and_execution_parameters(server: Server) -> None:
    assert server.request("GET", "/ping")[0] == 200
    status, _, body = server.request("GET", "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {
        "MaxConcurrentTransforms": WORKERS,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


@pytest.mark.parametrize("accept", [CSV, JSON, JSON_LINES, NPY])
def test_the_payload_is_predicted_in_every_accept_type(
    server: Server, trained: Trained, accept: str
) -> None:
    expected = predict(server, trained)
    assert len(expected) == len(trained.rows)
    assert_same(trained, predict(server, trained, accept), expected)


@pytest.mark.parametrize(
    "form", ["csv", "json-lists", "json-instances", "json-objects", "jsonlines", "npy"]
)
def test_the_payload_is_read_from_every_content_type(
    server: Server, trained: Trained, form: str
) -> None:
    content_type, body = bodies(trained)[form]
    status, _, answer = invoke(server, body, content_type)
    assert status == 200, answer[:2000]
    assert_same(trained, decode(JSON, answer), predict(server, trained))


@pytest.mark.parametrize("accept", [CSV, JSON, JSON_LINES])
@pytest.mark.parametrize("content_type", [CSV, JSON_LINES])
def test_batch_transform_gets_exactly_one_line_per_record(
    batch_server: Server, trained: Trained, content_type: str, accept: str
) -> None:
    form = "csv" if content_type == CSV else "jsonlines"
    status, _, body = invoke(batch_server, bodies(trained)[form][1], content_type, accept)
    assert status == 200, body[:2000]
    records = decode(accept, body, batch=True)
    assert len(records) == len(trained.rows), body[:2000]
    if trained.kind == "classifier" and accept != CSV:
        # SAGEMAKER_INFERENCE_OUTPUT: these outputs, in this order.
        assert all(list(r) == list(ENV_OUTPUTS) for r in records), records
    elif trained.kind == "classifier":
        assert all(len(next(csv.reader([line]))) == len(ENV_OUTPUTS) for line in records)


def test_a_row_of_the_wrong_width_is_a_400_that_names_it(server: Server, trained: Trained) -> None:
    rows = [list(r) for r in trained.rows[:3]]
    while len(rows) < 3:
        rows.append(list(rows[0]))
    rows[2].append(1.0)
    for content_type, body in ((CSV, csv_body(rows)), (JSON, json.dumps(rows).encode())):
        status, headers, answer = invoke(server, body, content_type)
        assert status == 400, answer[:2000]
        assert headers["Content-Type"].startswith(JSON)
        assert "row 3" in json.loads(answer)["error"]
    assert server.request("GET", "/ping")[0] == 200
    assert len(predict(server, trained)) == len(trained.rows)


@cases_where(lambda case: kind(case) == "classifier")
def test_a_classifier_answers_probabilities_when_asked(server: Server, trained: Trained) -> None:
    labels = predict(server, trained)
    status, _, body = invoke(server, bodies(trained)["csv"][1], accept=f"{JSON};verbose")
    assert status == 200, body[:2000]
    records = decode(JSON, body)
    classes = trained.metadata["classes"]
    assert len(records) == len(labels)
    for record, label in zip(records, labels, strict=True):
        assert list(record) == list(OUTPUTS)
        assert record["labels"] == classes
        assert len(record["probabilities"]) == len(classes)
        assert sum(record["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert record["probability"] == pytest.approx(max(record["probabilities"]))
        best = classes[int(np.argmax(record["probabilities"]))]
        assert record["predicted_label"] == best == label

    status, _, body = invoke(server, bodies(trained)["csv"][1], accept=f"{CSV};verbose")
    assert status == 200, body[:2000]
    lines = decode(CSV, body)
    assert len(lines) == len(labels)
    assert [next(csv.reader([line]))[0] for line in lines] == [str(label) for label in labels]


@cases_where(trains_from_csv_with_missing_values)
def test_missing_values_are_predicted_as_scikit_learn_predicts_them(
    server: Server, trained: Trained
) -> None:
    """The same estimator fitted here on the same CSV (empty and NA cells as NaN) predicts the
    payload's rows with missing values exactly as the server does."""
    frames = [
        pd.read_csv(path, header=None, na_values=list(MISSING), keep_default_na=False)
        for path in trained.channel_files("training")
    ]
    data = pd.concat(frames, ignore_index=True)
    labels = data.pop(0).to_numpy()
    names = trained.metadata["feature_names"]
    estimator = trained.module.estimator()
    estimator.set_params(
        **{k: decode_hyperparameter(v) for k, v in trained.hyperparameters.items()}
    )
    estimator.fit(features(data.to_numpy(dtype=object), names, trained.string_columns), labels)
    payload = np.array(trained.rows, dtype=object)
    expected = estimator.predict(features(payload, names, trained.string_columns)).tolist()
    assert_same(trained, predict(server, trained), expected)


def decode_hyperparameter(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def features(rows: np.ndarray, names: list[str], strings: list[int]) -> Any:
    """Rows as `train` and `serve` hand them to the model: float32 numbers (NaN when missing),
    in a DataFrame when a column holds strings."""
    if not strings:
        return np.array(
            [[math.nan if v is None else v for v in row] for row in rows], dtype=np.float32
        )
    frame = pd.DataFrame(rows, columns=names)
    for i, name in enumerate(names):
        if i not in strings:
            frame[name] = pd.to_numeric(frame[name]).to_numpy(dtype=np.float32)
    return frame


def test_two_forked_workers_answer_every_invocation(server: Server, trained: Trained) -> None:
    """Libraries with OpenMP thread pools (HistGradientBoosting, LightGBM) hang in a forked worker
    when the pool started before the fork: every request, on every connection, gets its answer."""
    gunicorn_workers = children(server.gunicorn_master)
    assert len(gunicorn_workers) == WORKERS, [command_line(p) for p in gunicorn_workers]
    body = bodies(trained)["csv"][1]
    expected = predict(server, trained)

    def one(_: int) -> list[Any]:
        status, _, answer = invoke(server, body, timeout=20)
        assert status == 200, answer[:2000]
        return decode(JSON, answer)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(40)))
    for answer in answers:
        assert_same(trained, answer, expected)
    assert sorted(children(server.gunicorn_master)) == sorted(gunicorn_workers), "a worker died"


# ---------------------------------------------------------------------------- make demo


def test_make_demo_with_an_unknown_example_fails_listing_the_examples() -> None:
    require_tool("make")
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", "EXAMPLE=no_such_example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no_such_example" in result.stderr
    for folder in example_folders():
        assert folder.name in result.stderr, result.stderr
    # It stopped before installing or training anything.
    assert "install-system-packages" not in result.stdout, result.stdout


def test_make_demo_with_an_example_trains_serves_and_prints_its_predictions(
    tmp_path: Path,
) -> None:
    """`make demo EXAMPLE=random_forest` runs demo.sh with the example's files; run here on a copy
    of its test_dir (the installing steps are left out: `make -n` shows the command)."""
    require_tool("make")
    require_tool("nginx")
    require_tool("curl")
    example = EXAMPLES / "random_forest"
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", "EXAMPLE=random_forest"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    command = " ".join(dry_run.stdout.replace("\\\n", " ").split())
    for variable, value in (
        ("TEST_DIR", example / "test_dir"),
        ("PAYLOAD", example / "payload.csv"),
        ("BYOC_PREDICTOR", example / "predictor.py"),
    ):
        assert f'{variable}="{value}"' in command, command

    test_dir = tmp_path / "test_dir"
    shutil.copytree(example / "test_dir" / "input", test_dir / "input")
    environ = {k: v for k, v in os.environ.items() if k != "PORT"}
    demo = subprocess.run(
        [str(LOCAL_TEST / "demo.sh")],
        cwd=ROOT,
        # Relative paths, as a user would type them.
        env={
            **environ,
            "TEST_DIR": str(test_dir),
            "PAYLOAD": "examples/random_forest/payload.csv",
            "BYOC_PREDICTOR": "examples/random_forest/predictor.py",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"model module: {example / 'predictor.py'}" in demo.stdout
    assert "RandomForestClassifier" in demo.stdout
    after = demo.stdout.split("predictions for examples/random_forest/payload.csv:\n", 1)[1]
    classes = {"setosa", "versicolor", "virginica"}
    predictions = list(takewhile(lambda line: line in classes, after.splitlines()))
    assert len(predictions) == len((example / "payload.csv").read_text().splitlines())
    assert (test_dir / "model" / "metadata.json").is_file()
