"""fasttree: an exported tree predicts exactly as scikit-learn does, and tampering is refused."""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

from byoc import fasttree

N_FEATURES = 5
DEPTHS = [1, 2, 3, 5, 8, 13, None]
CLASSES = {
    "strings": np.array(["ant", "bee", "cat", "dog"]),
    "ints": np.array([-3, 0, 7, 42]),
}


def training_data(
    seed: int, rows: int = 600, missing: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """float32 features (a share `missing` of them NaN) and a noisy target in [0, 4)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    score = features[:, 0] + 0.5 * features[:, 1] * features[:, 2] + 0.3 * rng.normal(size=rows)
    if missing:
        features[rng.random(features.shape) < missing] = np.nan
    return features, score


def classification(seed: int, classes: np.ndarray, missing: float) -> tuple[np.ndarray, np.ndarray]:
    features, score = training_data(seed, missing=missing)
    codes = np.digitize(score, np.quantile(score, [0.25, 0.5, 0.75]))
    return features, classes[codes]


def prediction_rows(seed: int, fitted: Any, rows: int = 3000) -> np.ndarray:
    """float32 rows: random ones, 10% NaN, then rows with values on and beside every finite
    threshold (a split of missing values from the others has threshold +inf)."""
    rng = np.random.default_rng(seed + 1000)
    random = rng.normal(scale=1.5, size=(rows, N_FEATURES)).astype(np.float32)
    random[rng.random(random.shape) < 0.1] = np.nan
    tree = fitted.tree_
    inner = (tree.feature >= 0) & np.isfinite(tree.threshold)
    edges = []
    for feature, threshold in zip(tree.feature[inner], tree.threshold[inner], strict=True):
        on = np.float32(threshold)
        for value in (
            on,
            np.nextafter(on, np.float32(-np.inf)),
            np.nextafter(on, np.float32(np.inf)),
        ):
            row = random[len(edges) % rows].copy()
            row[feature] = value
            edges.append(row)
    return np.ascontiguousarray(np.vstack([random, *edges]))


def exported(estimator: Any, folder: Path) -> fasttree.DecisionTree:
    path = folder / fasttree.FILE
    fasttree.export(estimator, path)
    return fasttree.load(path)


@pytest.fixture(params=["python walk", "numpy walk", "natural batches"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every row through the small-batch Python walk, through the numpy walk, or batches of
    1..8 rows (Python) and the rest at once (numpy) as serving does."""
    if request.param == "python walk":
        monkeypatch.setattr(fasttree, "SMALL_BATCH", 10**9)
    elif request.param == "numpy walk":
        monkeypatch.setattr(fasttree, "SMALL_BATCH", 0)
    return request.param


def batches(matrix: np.ndarray, walk: str) -> list[np.ndarray]:
    if walk != "natural batches":
        return [matrix]
    small = [matrix[i : i + size] for i, size in enumerate(range(1, fasttree.SMALL_BATCH + 1))]
    assert all(len(b) <= fasttree.SMALL_BATCH for b in small)
    return [*small, matrix[: fasttree.SMALL_BATCH + 1], matrix]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("classes", sorted(CLASSES))
@pytest.mark.parametrize("missing", [0.0, 0.15], ids=["no NaN in training", "NaN in training"])
def test_a_classifier_predicts_the_classes_and_probabilities_of_scikit_learn(
    tmp_path: Path, walk: str, depth: int | None, classes: str, missing: float
) -> None:
    seed = DEPTHS.index(depth)
    features, labels = classification(seed, CLASSES[classes], missing)
    estimator = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(features, labels)
    tree = exported(estimator, tmp_path)
    matrix = prediction_rows(seed, estimator)
    assert np.isnan(matrix).any()

    assert tree.classes_.tolist() == estimator.classes_.tolist()
    assert tree.classes_.dtype.kind == estimator.classes_.dtype.kind
    assert tree.n_features_in_ == N_FEATURES
    for batch in batches(matrix, walk):
        predicted = tree.predict(batch)
        np.testing.assert_array_equal(predicted, estimator.predict(batch))
        # The same labels once they are Python values, as output_fn writes them.
        assert {type(v) for v in predicted.tolist()} == {
            type(v) for v in estimator.predict(batch).tolist()
        }
        np.testing.assert_allclose(
            tree.predict_proba(batch), estimator.predict_proba(batch), rtol=1e-12, atol=0
        )


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("missing", [0.0, 0.15], ids=["no NaN in training", "NaN in training"])
def test_a_regressor_predicts_the_values_of_scikit_learn(
    tmp_path: Path, walk: str, depth: int | None, missing: float
) -> None:
    seed = DEPTHS.index(depth)
    features, target = training_data(seed, missing=missing)
    estimator = DecisionTreeRegressor(max_depth=depth, random_state=seed).fit(features, target)
    tree = exported(estimator, tmp_path)
    matrix = prediction_rows(seed, estimator)

    assert tree.classes_ is None
    for batch in batches(matrix, walk):
        np.testing.assert_array_equal(tree.predict(batch), estimator.predict(batch))
    with pytest.raises(AttributeError):
        tree.predict_proba(matrix)


@pytest.mark.parametrize("kind", [DecisionTreeClassifier, DecisionTreeRegressor])
def test_a_split_of_missing_values_from_the_others_loads_and_predicts_like_scikit_learn(
    tmp_path: Path, walk: str, kind: type
) -> None:
    """scikit-learn writes such a split as threshold +inf, missing values going right."""
    features = np.array([[np.nan], [np.nan], [1], [2], [3]], dtype=np.float32)
    target = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    estimator = kind().fit(
        features, target.astype(int) if kind is DecisionTreeClassifier else target
    )
    assert estimator.tree_.threshold[0] == np.inf
    assert not estimator.tree_.missing_go_to_left[0]

    tree = exported(estimator, tmp_path)

    rows = np.array([[np.nan], [-1e30], [0], [5], [3.4e38]] * 2, dtype=np.float32)
    for batch in batches(rows, walk):
        np.testing.assert_array_equal(tree.predict(batch), estimator.predict(batch))


def test_a_single_leaf_tree_predicts_its_one_value(tmp_path: Path, walk: str) -> None:
    features = np.zeros((10, 2), dtype=np.float32)
    estimator = DecisionTreeClassifier().fit(features, np.array(["a", "b"] * 5))
    assert estimator.tree_.node_count == 1
    tree = exported(estimator, tmp_path)
    rows = np.array([[0, 0], [np.nan, 5]] * 6, dtype=np.float32)
    for batch in batches(rows, walk):
        np.testing.assert_array_equal(tree.predict(batch), estimator.predict(batch))
        np.testing.assert_array_equal(tree.predict_proba(batch), estimator.predict_proba(batch))


@pytest.mark.parametrize(
    "estimator",
    [
        DecisionTreeClassifier(max_depth=3, splitter="random", random_state=0),
        DecisionTreeClassifier(min_samples_leaf=20, class_weight="balanced", random_state=0),
        DecisionTreeRegressor(criterion="absolute_error", max_leaf_nodes=9, random_state=0),
        DecisionTreeRegressor(criterion="poisson", max_depth=6, random_state=0),
    ],
    ids=repr,
)
def test_other_hyperparameters_predict_the_same_too(
    tmp_path: Path, walk: str, estimator: Any
) -> None:
    features, score = training_data(7, missing=0.1)
    if isinstance(estimator, DecisionTreeClassifier):
        target = CLASSES["strings"][(score > 0).astype(int)]
    else:
        target = np.exp(score / 3)
    estimator.fit(features, target)
    tree = exported(estimator, tmp_path)
    matrix = prediction_rows(7, estimator)
    for batch in batches(matrix, walk):
        np.testing.assert_array_equal(tree.predict(batch), estimator.predict(batch))


# ---------------------------------------------------------------------------- supports


def fitted(estimator: Any, outputs: int = 1) -> Any:
    features, score = training_data(3, rows=100)
    target = (score > 0).astype(int)
    if outputs > 1:
        target = np.column_stack([target] * outputs)
    return estimator.fit(features, target)


class OwnTree(DecisionTreeClassifier):
    """A subclass elsewhere: it may predict differently, so it is not exported."""


@pytest.mark.parametrize(
    ("estimator", "supported"),
    [
        (fitted(DecisionTreeClassifier()), True),
        (fitted(DecisionTreeRegressor()), True),
        (DecisionTreeClassifier(), False),  # not fitted
        (fitted(DecisionTreeClassifier(), outputs=2), False),
        (fitted(DecisionTreeRegressor(), outputs=2), False),
        (fitted(DecisionTreeClassifier(monotonic_cst=[1, 0, 0, 0, 0])), False),
        (fitted(ExtraTreeClassifier()), False),
        (fitted(ExtraTreeRegressor()), False),
        (fitted(OwnTree()), False),
        (fitted(RandomForestClassifier(n_estimators=2)), False),
        (fitted(LogisticRegression()), False),
        (fitted(make_pipeline(StandardScaler(), DecisionTreeClassifier())), False),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, bool) else str(v),
)
def test_supports_only_fitted_single_output_decision_trees(estimator: Any, supported: bool) -> None:
    assert fasttree.supports(estimator) is supported


# ---------------------------------------------------------------------------- scikit-learn's side

TREE_ATTRIBUTES = (
    "children_left",
    "children_right",
    "feature",
    "threshold",
    "value",
    "missing_go_to_left",
    "max_depth",
)
"""What export reads of `estimator.tree_`; the next tests fail when scikit-learn changes them."""
ESTIMATOR_ATTRIBUTES = ("tree_", "classes_", "n_features_in_")


class Recorder:
    """Passes attribute reads through to `target`, noting their names."""

    def __init__(self, target: Any, seen: set[str]) -> None:
        self._target = target
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        self._seen.add(name)
        value = getattr(self._target, name)
        return Recorder(value, self._seen) if name == "tree_" else value


@pytest.mark.parametrize("kind", [DecisionTreeClassifier, DecisionTreeRegressor])
def test_export_reads_only_the_attributes_checked_here(tmp_path: Path, kind: type) -> None:
    features, score = training_data(1, missing=0.1)
    target = score > 0 if kind is DecisionTreeClassifier else score
    estimator = kind(max_depth=4).fit(features, target)
    seen: set[str] = set()

    fasttree.export(Recorder(estimator, seen), tmp_path / fasttree.FILE)

    assert seen <= set(TREE_ATTRIBUTES) | set(ESTIMATOR_ATTRIBUTES)
    assert set(TREE_ATTRIBUTES) <= seen


@pytest.mark.parametrize("kind", [DecisionTreeClassifier, DecisionTreeRegressor])
def test_scikit_learns_tree_attributes_still_mean_what_fasttree_reads(kind: type) -> None:
    features, score = training_data(2, missing=0.1)
    classifier = kind is DecisionTreeClassifier
    target = CLASSES["strings"][(score > 0).astype(int)] if classifier else score
    estimator = kind(max_depth=6, random_state=0).fit(features, target)
    tree = estimator.tree_
    n_nodes = tree.node_count

    for name in TREE_ATTRIBUTES[:-1]:
        assert len(getattr(tree, name)) == n_nodes, name
    for name in ("children_left", "children_right", "feature"):
        assert getattr(tree, name).dtype.kind == "i", name
    assert tree.threshold.dtype == np.float64
    assert tree.missing_go_to_left.dtype.kind in "bu"
    assert tree.value.shape == (n_nodes, 1, len(estimator.classes_) if classifier else 1)
    assert isinstance(tree.max_depth, int)
    assert tree.max_depth == estimator.get_depth()
    assert estimator.n_features_in_ == N_FEATURES
    assert estimator.n_outputs_ == 1
    # Leaves have -1 as both children; a node's children come after it (load relies on it).
    leaves = tree.children_left == -1
    np.testing.assert_array_equal(leaves, tree.children_right == -1)
    inner = np.flatnonzero(~leaves)
    assert (tree.children_left[inner] > inner).all()
    assert (tree.children_right[inner] > inner).all()
    assert ((tree.feature[inner] >= 0) & (tree.feature[inner] < N_FEATURES)).all()
    # Predictions are the leaf's value: normalised for a classifier, as it is for a regressor.
    some_missing = features.copy()
    some_missing[::3, 0] = np.nan
    leaf = estimator.apply(some_missing)
    assert leaves[leaf].all()
    value = tree.value[leaf, 0, :]
    if classifier:
        expected = value / value.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(estimator.predict_proba(some_missing), expected, rtol=1e-12)
    else:
        np.testing.assert_array_equal(estimator.predict(some_missing), value[:, 0])
    # A NaN goes where missing_go_to_left says at every node on its path.
    routed = 0
    for row in some_missing[::3][:20]:
        path = estimator.decision_path(row[None, :]).indices
        for node, child in itertools.pairwise(path):
            x = row[tree.feature[node]]
            missing = bool(np.isnan(x))
            routed += missing
            left = bool(tree.missing_go_to_left[node]) if missing else x <= tree.threshold[node]
            assert child == (tree.children_left[node] if left else tree.children_right[node])
    assert routed > 0, "no path met a missing value"


# ---------------------------------------------------------------------------- tampered files


@pytest.fixture
def tree_file(tmp_path: Path) -> Path:
    features, labels = classification(5, CLASSES["strings"], missing=0.0)
    estimator = DecisionTreeClassifier(max_depth=5, random_state=0).fit(features, labels)
    path = tmp_path / fasttree.FILE
    fasttree.export(estimator, path)
    fasttree.load(path)  # untampered, it loads
    return path


def rewrite(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> Path:
    """The file with its arrays changed by `change`, written as export writes it."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    change(arrays)
    tampered = path.with_name("tampered.npz")
    with open(tampered, "wb") as f:
        np.savez(f, **arrays)
    return tampered


def inner_node(arrays: dict[str, np.ndarray], which: int = 1) -> int:
    return int(np.flatnonzero(arrays["left"] != -1)[which])


def set_left(to: Callable[[int], int]) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        node = inner_node(arrays)
        arrays["left"][node] = to(node)

    return change


def set_item(name: str, value: Any, at: Callable[[dict], Any] = inner_node) -> Callable:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name][at(arrays)] = value(arrays) if callable(value) else value

    return change


def replace(name: str, value: Callable[[dict], Any]) -> Callable:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name] = value(arrays)

    return change


TAMPERINGS = {
    "child pointing to itself": set_left(lambda node: node),
    "child pointing back to the root (a cycle)": set_left(lambda node: 0),
    "child pointing to its parent's sibling before it": set_left(lambda node: node - 1),
    "child index out of range": set_left(lambda node: 10**6),
    "child index below -1": set_left(lambda node: -5),
    "node with one child": set_item("right", -1),
    "feature index too large": set_item("feature", lambda a: int(a["n_features"])),
    "feature index negative": set_item("feature", -2),
    "NaN threshold": set_item("threshold", np.nan),
    "infinite value": set_item("value", np.inf, at=lambda a: (0, 0)),
    "depth one more": replace("depth", lambda a: np.array(int(a["depth"]) + 1)),
    "depth one less": replace("depth", lambda a: np.array(int(a["depth"]) - 1)),
    "depth zero": replace("depth", lambda a: np.array(0)),
    "format version 2": replace("format_version", lambda a: np.array(2)),
    "fewer features than the tree reads": replace("n_features", lambda a: np.array(1)),
    "node arrays of different lengths": replace("threshold", lambda a: a["threshold"][:-1]),
    "values for fewer nodes": replace("value", lambda a: a["value"][:-1]),
    "one class too many": replace("classes", lambda a: np.append(a["classes"], "extra")),
    "values of one dimension for a classifier": replace("value", lambda a: a["value"][:, 0]),
    "classes of two dimensions": replace("classes", lambda a: a["classes"][None, :]),
    "no nodes": lambda a: a.update(
        {k: a[k][:0] for k in ("left", "right", "feature", "threshold", "missing_go_to_left")}
        | {"value": a["value"][:0]}
    ),
    "pickled object array of values": replace("value", lambda a: a["value"].astype(object)),
    "pickled object array of classes": replace(
        "classes", lambda a: np.array([{"not": "a class"}] * len(a["classes"]), dtype=object)
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS), ids=str)
def test_a_tampered_tree_is_refused(tree_file: Path, tampering: str) -> None:
    tampered = rewrite(tree_file, TAMPERINGS[tampering])

    with pytest.raises(fasttree.TreeFileError, match=r"tampered\.npz"):
        fasttree.load(tampered)


@pytest.mark.parametrize(
    "name",
    [
        "format_version",
        "left",
        "right",
        "feature",
        "threshold",
        "missing_go_to_left",
        "value",
        "depth",
        "n_features",
        "classes",
    ],
)
def test_a_file_missing_an_array_is_refused(tree_file: Path, name: str) -> None:
    tampered = rewrite(tree_file, lambda arrays: arrays.pop(name))

    with pytest.raises(fasttree.TreeFileError, match=r"tampered\.npz"):
        fasttree.load(tampered)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_refused(tree_file: Path, keep: float) -> None:
    content = tree_file.read_bytes()
    tree_file.write_bytes(content[: int(len(content) * keep)])

    with pytest.raises(fasttree.TreeFileError, match=fasttree.FILE):
        fasttree.load(tree_file)


def numpy_array_file(path: Path) -> None:
    """A valid .npy file, not an archive of arrays."""
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(b""),
        lambda path: path.write_bytes(b"\x80\x04\x95 a pickle, not a zip"),
        lambda path: path.write_text("left,right\n1,2\n"),
        numpy_array_file,
    ],
    ids=["empty", "pickle", "text", "a .npy array"],
)
def test_a_file_that_is_not_an_archive_of_arrays_is_refused(
    tmp_path: Path, write: Callable[[Path], None]
) -> None:
    path = tmp_path / fasttree.FILE
    write(path)

    with pytest.raises(fasttree.TreeFileError, match=fasttree.FILE):
        fasttree.load(path)


def test_a_zip_holding_a_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / fasttree.FILE
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("left.npy", b"\x80\x04\x95 pickle")

    with pytest.raises(fasttree.TreeFileError, match=fasttree.FILE):
        fasttree.load(path)
