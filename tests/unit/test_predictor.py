"""Loading the model for serving: a missing or unusable model is a ModelError that says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from iris_model import save_iris_model

import predictor
from model import ModelError


def test_a_missing_model_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model: .*metadata.json does not exist"):
        predictor.load_model(tmp_path)


def test_a_corrupt_model_file_is_a_model_error(tmp_path: Path) -> None:
    save_iris_model(tmp_path)
    (tmp_path / "model.skops").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load the model"):
        predictor.load_model(tmp_path)


def test_metadata_disagreeing_with_the_tree_is_a_model_error(tmp_path: Path) -> None:
    save_iris_model(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    (tmp_path / "metadata.json").write_text(json.dumps({**metadata, "n_features": 5}))
    with pytest.raises(ModelError, match="5 features"):
        predictor.load_model(tmp_path)


def test_the_loaded_model_does_not_import_scikit_learn(tmp_path: Path) -> None:
    import subprocess
    import sys

    save_iris_model(tmp_path)
    code = (
        "import sys, pathlib, predictor; "
        f"predictor.load_model(pathlib.Path({str(tmp_path)!r})); "
        "print('sklearn' in sys.modules)"
    )
    source = Path(predictor.__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=source, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
