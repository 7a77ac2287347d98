"""`docker run -v CASE:/opt/ml IMAGE train`: the training contract, run by the real image."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .conftest import run_training, training_case
from .engine import Engine

COLUMNS = ["species", "sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_TRAINING_ROWS = 120


def test_training_writes_a_model_and_no_failure_file(
    engine: Engine, image: str, model_dir: Path
) -> None:
    """The bundled job succeeds with its input read-only: exit 0, a model, no failure file."""
    assert (model_dir / "model.skops").is_file()
    assert (model_dir / "metadata.json").is_file()
    assert not (model_dir.parent / "output" / "failure").exists()


def test_a_bad_hyperparameter_fails_with_a_failure_file_and_no_model(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """An invalid value is the user's mistake: non-zero exit, the failure file names the key."""
    case = training_case(tmp_path, {"max_leaf_nodes": "many"})
    result = run_training(engine, image, case)
    assert result.returncode != 0
    failure = (case / "output" / "failure").read_text()
    assert "max_leaf_nodes" in failure
    assert "many" in failure
    assert not (case / "model" / "model.skops").exists()


def test_gzip_csv_and_parquet_are_read_by_the_image_s_pyarrow(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The image's pyarrow, without its optional plugins, still reads gzip CSV and Parquet."""
    gzip_case = training_case(tmp_path / "gzip")
    training = gzip_case / "input" / "data" / "training"
    (training / "iris.csv.gz").write_bytes(gzip.compress((training / "iris.csv").read_bytes()))
    (training / "iris.csv").unlink()

    parquet_case = training_case(tmp_path / "parquet", {"label_column": "species"})
    for channel in ("training", "validation"):
        folder = parquet_case / "input" / "data" / channel
        table = pcsv.read_csv(folder / "iris.csv", pcsv.ReadOptions(column_names=COLUMNS))
        pq.write_table(table, folder / "iris.parquet")
        (folder / "iris.csv").unlink()

    for case, label in ((gzip_case, None), (parquet_case, "species")):
        result = run_training(engine, image, case)
        assert result.returncode == 0, result.stdout + result.stderr
        metadata = json.loads((case / "model" / "metadata.json").read_text())
        assert metadata["training_rows"] == IRIS_TRAINING_ROWS
        assert metadata["label_column"] == label
        assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
