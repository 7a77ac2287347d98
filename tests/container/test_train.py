"""`docker run -v CASE:/opt/ml IMAGE train`: the training contract, run by the real image."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_training, training_case
from .engine import Engine


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
