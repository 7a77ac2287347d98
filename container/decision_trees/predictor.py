"""YOUR MODEL: how it is loaded, how a request becomes a matrix, how predictions become records.

This is the one module to change to serve another model. Each function is called by the plumbing
in app.py, which does the rest of SageMaker's contract (content types, errors, sizes, /ping):

    load_model(model_dir)        once, in the gunicorn master before the workers fork
    to_matrix(model, rows)       rows: a 2-D float array decoded from CSV, JSON, JSON Lines or NPY
    predict(model, matrix)       the predictions, one per row
    to_records(model, predicted) one JSON-able value per row; CSV writes one line per record

Raise `InputError` for anything wrong with the caller's data: it becomes a 400 naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tree
from model import ModelError, load_with


class InputError(ValueError):
    """The caller's data cannot be predicted; the message is sent back with a 400."""


@dataclass(frozen=True)
class Model:
    """What serving needs, prepared once at load time."""

    tree: tree.DecisionTree
    n_features: int
    labels: np.ndarray
    """The class labels as strings, indexed by the class index `predict` returns (object array)."""


def load_model(model_dir: Path) -> Model:
    """Read the tree `train` saved; ModelError says what is missing or wrong.

    To serve another scikit-learn estimator, load it with `model.load(model_dir)` (skops) here
    and call its `predict` in `predict` below.
    """
    fitted, metadata = load_with(model_dir, tree.read)
    n_features = int(metadata.get("n_features", fitted.n_features))
    if n_features != fitted.n_features:
        raise ModelError(f"metadata.json has {n_features} features, the tree {fitted.n_features}")
    return Model(
        tree=fitted,
        n_features=n_features,
        labels=np.array([str(label) for label in fitted.classes], dtype=object),
    )


def to_matrix(model: Model, rows: np.ndarray) -> np.ndarray:
    """Check the decoded rows against the model and return what the tree reads: float32, C order."""
    if rows.shape[0] == 0:
        raise InputError("no rows: send at least one record")
    if rows.shape[1] != model.n_features:
        raise InputError(f"row 1: expected {model.n_features} features, got {rows.shape[1]}")
    matrix = np.ascontiguousarray(rows, dtype=np.float32)
    # A float64 sum of float32 values cannot overflow, so it is finite unless a value is not.
    if not np.isfinite(matrix.sum(dtype=np.float64)):
        row, column = np.argwhere(~np.isfinite(matrix))[0]
        raise InputError(f"row {row + 1}: feature {column + 1} is {rows[row, column]}, not finite")
    return matrix


def predict(model: Model, matrix: np.ndarray) -> np.ndarray:
    """The index of the predicted class of each row."""
    return model.tree.predict(matrix)


def to_records(model: Model, predicted: np.ndarray) -> list[Any]:
    """One output record per row: the predicted class label."""
    return model.labels[predicted].tolist()
