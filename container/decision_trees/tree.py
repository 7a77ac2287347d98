"""A fitted scikit-learn decision tree read from its skops file and walked with numpy alone.

Importing scikit-learn takes longer than the server's whole start-up budget (it pulls in SciPy)
and holds ~100 MB in every worker, while predicting with a tree needs only five arrays. This reads
them from the skops zip: JSON and .npy files loaded with allow_pickle=False, so, like skops itself,
it cannot run code from the file. The predictions equal the estimator's own, which a unit test
checks against scikit-learn.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ESTIMATOR = "sklearn.tree._classes.DecisionTreeClassifier"
SMALL_BATCH = 8


class TreeFileError(ValueError):
    """The file is not a skops file of a single-output DecisionTreeClassifier."""


@dataclass(frozen=True)
class DecisionTree:
    """A binary tree of threshold tests; leaves point to themselves, so extra steps stay put."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_class: np.ndarray
    """For each node, the index in `classes` of the class predicted at that node."""
    depth: int
    n_features: int
    classes: list[Any]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The class index for each row of a float32, C-ordered (rows, n_features) matrix.

        Like scikit-learn, a row goes left when its float32 value <= the float64 threshold.
        A few rows walk the tree in Python: numpy's per-call overhead would cost more than the walk.
        """
        if len(matrix) <= SMALL_BATCH:
            return np.array([self._walk(row) for row in matrix.tolist()], dtype=np.intp)
        children, feature, threshold = self._level_tables
        flat = matrix.ravel()
        row_start = np.arange(0, flat.size, self.n_features)
        node = np.zeros(len(matrix), dtype=np.intp)
        for _ in range(self.depth):
            goes_left = flat.take(row_start + feature.take(node)) <= threshold.take(node)
            node *= 2
            node += goes_left
            node = children.take(node)
        return self.leaf_class.take(node)

    def _walk(self, row: list[float]) -> int:
        left, right, feature, threshold = self._lists
        node = 0
        for _ in range(self.depth):
            node = left[node] if row[feature[node]] <= threshold[node] else right[node]
        return self._leaf_class_list[node]

    @functools.cached_property
    def _level_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the level-by-level walk reads, arranged for the fewest numpy calls per level.

        `children[2 * node + goes_left]` is the next node: one take instead of two and a where.
        The thresholds are rounded down to float32, so the comparison runs in float32 without
        converting the rows: for a float32 x, x <= t exactly when x <= the largest float32 <= t.
        """
        children = np.stack([self.right, self.left], axis=1).ravel()
        threshold = self.threshold.astype(np.float32)
        above = threshold > self.threshold
        threshold[above] = np.nextafter(threshold[above], np.float32(-np.inf))
        return children, self.feature, threshold

    @functools.cached_property
    def _lists(self) -> tuple[list[int], list[int], list[int], list[float]]:
        return (
            self.left.tolist(),
            self.right.tolist(),
            self.feature.tolist(),
            self.threshold.tolist(),
        )

    @functools.cached_property
    def _leaf_class_list(self) -> list[int]:
        return self.leaf_class.tolist()


def read(path: Path) -> DecisionTree:
    """Read the tree from a skops file written by `skops.io.dump(DecisionTreeClassifier)`."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        kind = f"{schema.get('__module__')}.{schema.get('__class__')}"
        if kind != ESTIMATOR:
            raise TreeFileError(f"{path} holds a {kind}, not a {ESTIMATOR}")
        attributes = schema["content"]["content"]
        if _value(archive, attributes["n_outputs_"]) != 1:
            raise TreeFileError("only single-output trees are supported")
        state = attributes["tree_"]["content"]["content"]
        nodes = _value(archive, state["nodes"])
        values = _value(archive, state["values"])
        return _build(
            nodes,
            values,
            depth=_value(archive, state["max_depth"]),
            n_features=_value(archive, attributes["n_features_in_"]),
            classes=list(_value(archive, attributes["classes_"])),
        )


def _build(
    nodes: np.ndarray, values: np.ndarray, depth: int, n_features: int, classes: list[Any]
) -> DecisionTree:
    left = nodes["left_child"].astype(np.intp)
    right = nodes["right_child"].astype(np.intp)
    feature = nodes["feature"].astype(np.intp)
    threshold = nodes["threshold"].astype(np.float64)
    is_leaf = left == -1
    itself = np.flatnonzero(is_leaf)
    left[is_leaf], right[is_leaf], feature[is_leaf], threshold[is_leaf] = itself, itself, 0, 0.0
    return DecisionTree(
        left=left,
        right=right,
        feature=feature,
        threshold=threshold,
        leaf_class=values[:, 0, :].argmax(axis=1),
        depth=int(depth),
        n_features=int(n_features),
        classes=[c.item() if isinstance(c, np.generic) else c for c in classes],
    )


def _value(archive: zipfile.ZipFile, node: dict[str, Any]) -> Any:
    """The value of one node of a skops schema: JSON, a JSON-held array, or an .npy file."""
    if node.get("is_json"):
        return json.loads(node["content"])
    if node.get("type") == "json":
        return [_value(archive, item) for item in node["content"]]
    if node.get("type") == "numpy":
        return np.load(io.BytesIO(archive.read(node["file"])), allow_pickle=False)
    raise TreeFileError(f"unexpected {node.get('__class__')} in the skops file")
