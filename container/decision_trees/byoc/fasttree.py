"""A fitted scikit-learn decision tree as five numpy arrays, walked without scikit-learn.

Importing scikit-learn takes longer than the server's whole start-up budget (it pulls in SciPy)
and holds ~100 MB in every worker, while predicting with one tree needs only a few arrays. `train`
exports them from the tree's public attributes (`tree_.children_left`, ..., `missing_go_to_left`)
into a file of this project's own format (`tree.npz`, read with allow_pickle=False, so it cannot run
code), beside the skops file; `serve` walks them with numpy. A unit test checks the predictions,
rows with missing values included, against scikit-learn's own.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILE = "tree.npz"
SUPPORTED = ("DecisionTreeClassifier", "DecisionTreeRegressor")
"""The estimators exported exactly as they are (single-output, from sklearn.tree)."""
SMALL_BATCH = 8
FORMAT_VERSION = 1


class TreeFileError(ValueError):
    """The file is not a tree this module wrote, or it was altered."""


def supports(estimator: Any) -> bool:
    """True for a fitted single-output DecisionTreeClassifier or DecisionTreeRegressor."""
    kind = type(estimator)
    return (
        kind.__module__.startswith("sklearn.tree")
        and kind.__name__ in SUPPORTED
        and getattr(estimator, "n_outputs_", None) == 1
        and getattr(estimator, "monotonic_cst", None) is None
    )


def export(estimator: Any, path: Path) -> None:
    """Write the arrays that predict like `estimator` (which `supports` accepted) to `path`."""
    tree = estimator.tree_
    value = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
    classifier = hasattr(estimator, "classes_")
    if classifier:
        # As DecisionTreeClassifier.predict_proba normalises the leaf's value.
        normalizer = value.sum(axis=1, keepdims=True)
        normalizer[normalizer == 0.0] = 1.0
        value = value / normalizer
    else:
        value = value[:, 0]
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "left": np.asarray(tree.children_left, dtype=np.int64),
        "right": np.asarray(tree.children_right, dtype=np.int64),
        "feature": np.asarray(tree.feature, dtype=np.int64),
        "threshold": np.asarray(tree.threshold, dtype=np.float64),
        "missing_go_to_left": np.asarray(tree.missing_go_to_left, dtype=np.bool_),
        "value": value,
        "depth": np.array(int(tree.max_depth)),
        "n_features": np.array(int(estimator.n_features_in_)),
    }
    if classifier:
        arrays["classes"] = np.asarray(estimator.classes_)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: Path) -> DecisionTree:
    """Read and check a file `export` wrote; TreeFileError when it is not one or was altered."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, EOFError) as e:
        # TypeError: a lone .npy array, which is not an archive.
        raise TreeFileError(f"{path} is not a tree file: {e}") from None
    try:
        return _build(arrays)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise TreeFileError(f"{path} holds no valid tree: {e}") from None


def _build(arrays: dict[str, np.ndarray]) -> DecisionTree:
    if int(arrays["format_version"]) != FORMAT_VERSION:
        raise ValueError(f"format version {arrays['format_version']}, not {FORMAT_VERSION}")
    left, right = arrays["left"].astype(np.intp), arrays["right"].astype(np.intp)
    feature, threshold = arrays["feature"].astype(np.intp), arrays["threshold"].astype(np.float64)
    missing_left = arrays["missing_go_to_left"].astype(np.bool_)
    value = arrays["value"].astype(np.float64)
    n_features, depth = int(arrays["n_features"]), int(arrays["depth"])
    classes = arrays.get("classes")
    n_nodes = len(left)
    if n_nodes == 0 or any(len(a) != n_nodes for a in (right, feature, threshold, missing_left)):
        raise ValueError("the node arrays differ in length")
    if len(value) != n_nodes or value.ndim != (1 if classes is None else 2):
        raise ValueError("the values do not match the nodes")
    if classes is not None and (classes.ndim != 1 or value.shape[1] != len(classes)):
        raise ValueError("the class probabilities do not match the classes")
    if classes is not None and classes.dtype.kind not in "iufUb":
        raise ValueError(f"classes of dtype {classes.dtype}")
    is_leaf = left == -1
    if not np.array_equal(is_leaf, right == -1):
        raise ValueError("a node has one child")
    inner = np.flatnonzero(~is_leaf)
    # scikit-learn numbers a node's children after it: checking that makes every walk end.
    if np.any(left[inner] <= inner) or np.any(right[inner] <= inner):
        raise ValueError("a child does not come after its parent")
    if np.any(left[inner] >= n_nodes) or np.any(right[inner] >= n_nodes):
        raise ValueError("a child index is out of range")
    if np.any(feature[inner] < 0) or np.any(feature[inner] >= n_features):
        raise ValueError("a feature index is out of range")
    # A threshold may be infinite: scikit-learn splits missing values from all others at +inf.
    if not np.all(np.isfinite(value)) or np.any(np.isnan(threshold[inner])):
        raise ValueError("a value is not finite or a threshold is NaN")
    levels = np.zeros(n_nodes, dtype=np.intp)
    for node in inner:
        levels[left[node]] = levels[right[node]] = levels[node] + 1
    if int(levels.max()) != depth:
        raise ValueError(f"the depth is {int(levels.max())}, not {depth}")
    itself = np.flatnonzero(is_leaf)
    left[is_leaf], right[is_leaf], feature[is_leaf], threshold[is_leaf] = itself, itself, 0, 0.0
    return DecisionTree(
        left=left,
        right=right,
        feature=feature,
        threshold=threshold,
        missing_go_to_left=missing_left,
        value=value,
        depth=depth,
        n_features_in_=n_features,
        classes_=None if classes is None else classes,
    )


@dataclass(frozen=True)
class DecisionTree:
    """A binary tree of threshold tests; leaves point to themselves, so extra steps stay put.

    It predicts like the estimator it came from: `predict`, `predict_proba` (classifiers),
    `classes_` and `n_features_in_`.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_go_to_left: np.ndarray
    value: np.ndarray
    """Per node: class probabilities (classifier) or the predicted value (regressor)."""
    depth: int
    n_features_in_: int
    classes_: np.ndarray | None

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The predicted class or value of each row of a float32, C-ordered matrix."""
        leaves = self.apply(matrix)
        if self.classes_ is None:
            return self.value.take(leaves)
        return self._leaf_class.take(leaves)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """The probability of each class (in `classes_` order) for each row."""
        if self.classes_ is None:
            raise AttributeError("a regression tree has no predict_proba")
        return self.value.take(self.apply(matrix), axis=0)

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        """The leaf each row of a float32, C-ordered (rows, n_features) matrix ends in.

        Like scikit-learn, a row goes left when its float32 value <= the float64 threshold, and a
        missing value (NaN) goes where `missing_go_to_left` says. A few rows walk the tree in
        Python: numpy's per-call overhead would cost more than the walk.
        """
        if len(matrix) <= SMALL_BATCH:
            return np.array([self._walk(row) for row in matrix.tolist()], dtype=np.intp)
        children, feature, threshold = self._level_tables
        flat = matrix.ravel()
        row_start = np.arange(0, flat.size, self.n_features_in_)
        missing = np.isnan(flat).any()
        node = np.zeros(len(matrix), dtype=np.intp)
        for _ in range(self.depth):
            values = flat.take(row_start + feature.take(node))
            goes_left = values <= threshold.take(node)
            if missing:
                goes_left |= np.isnan(values) & self.missing_go_to_left.take(node)
            node *= 2
            node += goes_left
            node = children.take(node)
        return node

    def _walk(self, row: list[float]) -> int:
        left, right, feature, threshold, missing_left = self._lists
        node = 0
        for _ in range(self.depth):
            x = row[feature[node]]
            if x <= threshold[node] or (x != x and missing_left[node]):
                node = left[node]
            else:
                node = right[node]
        return node

    @functools.cached_property
    def _leaf_class(self) -> np.ndarray:
        """The class predicted at each node: the most probable, the first of equals.

        An array of Python objects: predictions then share the few label objects, where a
        unicode array would make a new string per row when the records are built.
        """
        assert self.classes_ is not None
        classes = np.array(self.classes_.tolist(), dtype=object)
        return classes.take(self.value.argmax(axis=1))

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
    def _lists(self) -> tuple[list[int], list[int], list[int], list[float], list[bool]]:
        return (
            self.left.tolist(),
            self.right.tolist(),
            self.feature.tolist(),
            self.threshold.tolist(),
            self.missing_go_to_left.tolist(),
        )
