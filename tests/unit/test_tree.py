"""The tree read from the skops file predicts exactly what scikit-learn predicts."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io
from iris_model import fit_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import tree


@pytest.mark.parametrize(
    "hyperparameters", [{}, {"max_leaf_nodes": 5}, {"max_depth": 2}, {"min_samples_leaf": 10}]
)
def test_predictions_equal_scikit_learn(tmp_path: Path, hyperparameters: dict) -> None:
    estimator, features = fit_iris(**hyperparameters)
    skops.io.dump(estimator, tmp_path / "model.skops")
    fitted = tree.read(tmp_path / "model.skops")
    rng = np.random.default_rng(0)
    random_rows = rng.uniform(0, 8, size=(20_000, 4)).astype(np.float32)
    for matrix in (features, random_rows, features[:1], random_rows[:8]):
        labels = np.array(fitted.classes, dtype=object)[fitted.predict(matrix)]
        assert (labels == estimator.predict(matrix)).all()


def test_values_on_and_next_to_every_threshold_go_where_scikit_learn_sends_them(
    tmp_path: Path,
) -> None:
    estimator, features = fit_iris()
    skops.io.dump(estimator, tmp_path / "model.skops")
    fitted = tree.read(tmp_path / "model.skops")
    thresholds = estimator.tree_.threshold[estimator.tree_.feature >= 0]
    on = thresholds.astype(np.float32)
    edges = np.concatenate([on, np.nextafter(on, np.float32(-9)), np.nextafter(on, np.float32(9))])
    rows = []
    for column in range(features.shape[1]):
        for edge in edges:
            row = features[len(rows) % len(features)].copy()
            row[column] = edge
            rows.append(row)
    matrix = np.array(rows)
    for batch in (matrix, matrix[:8]):
        labels = np.array(fitted.classes, dtype=object)[fitted.predict(batch)]
        assert (labels == estimator.predict(batch)).all()


def test_integer_and_object_labels_are_read(tmp_path: Path) -> None:
    _, features = fit_iris(max_depth=3)
    for labels in (np.arange(150) % 3, np.array(["a", "b", "c"], dtype=object)[np.arange(150) % 3]):
        fitted_estimator = DecisionTreeClassifier(random_state=0).fit(features, labels)
        skops.io.dump(fitted_estimator, tmp_path / "model.skops")
        fitted = tree.read(tmp_path / "model.skops")
        assert fitted.classes == fitted_estimator.classes_.tolist()


def test_another_estimator_is_refused_by_name(tmp_path: Path) -> None:
    _, features = fit_iris()
    other = LogisticRegression(max_iter=200).fit(features, np.arange(150) % 3)
    skops.io.dump(other, tmp_path / "model.skops")
    with pytest.raises(tree.TreeFileError, match="LogisticRegression"):
        tree.read(tmp_path / "model.skops")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"\x80\x04pickle")
    with pytest.raises(zipfile.BadZipFile):
        tree.read(tmp_path / "model.skops")
