"""The default hooks, for any scikit-learn estimator: training, saving, loading and serving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from byoc import artifacts, defaults, fasttree, formats
from byoc.defaults import OUTPUTS, PREDICTED_LABEL, Model, Probabilities, Request
from byoc.errors import InputError

PROGRAM_DIR = Path(defaults.__file__).resolve().parents[1]
TREE = ["sklearn.tree._tree.Tree"]
BOOSTING = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data.astype(np.float32), np.array(data.target_names)[data.target]


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    return features, 3 * features[:, 0] - features[:, 1] ** 2 + 0.1 * rng.normal(size=300)


def save(estimator: Any, model_dir: Path, trusted: list[str], **metadata: Any) -> Path:
    """The model directory `train` writes for `estimator`, through the default save_model."""
    described = {
        **defaults.metadata(estimator),
        "feature_names": FEATURES,
        "string_columns": [],
        **metadata,
    }
    artifacts.save(model_dir, lambda s: defaults.save_model(estimator, s, trusted), described)
    return model_dir


def request(*outputs: str, accept: str = formats.JSON) -> Request:
    return Request(accept=accept, outputs=outputs or (PREDICTED_LABEL,))


def serve(model: Model, rows: np.ndarray, asked: Request) -> list[Any]:
    """Rows through the default serving hooks, as the app calls them."""
    rows = rows if rows.dtype == object else np.asarray(rows, dtype=np.float64)
    data = defaults.input_fn(rows, model)
    return defaults.output_fn(defaults.predict_fn(data, model, asked), model, asked)


# ---------------------------------------------------------------------------- build and fit


def test_build_estimator_configures_a_copy_of_the_template() -> None:
    template = DecisionTreeClassifier(random_state=0)

    built = defaults.build_estimator({"max_depth": "4", "criterion": "entropy"}, template)

    assert built is not template
    assert (built.max_depth, built.criterion, built.random_state) == (4, "entropy", 0)
    assert (template.max_depth, template.criterion) == (None, "gini")


def test_build_estimator_refuses_what_scikit_learn_refuses() -> None:
    with pytest.raises(InputError, match=r'^Hyperparameter n_estimators="0" is not valid'):
        defaults.build_estimator({"n_estimators": "0"}, RandomForestClassifier())


def test_fitting_a_single_class_fails_naming_it(iris: tuple[np.ndarray, np.ndarray]) -> None:
    features, _ = iris
    with pytest.raises(InputError, match=r"single class \('setosa' in all 150 rows\)"):
        defaults.fit(DecisionTreeClassifier(), features, np.array(["setosa"] * 150))


def test_a_regressor_may_fit_a_constant(regression: tuple[np.ndarray, np.ndarray]) -> None:
    features, target = regression
    fitted = defaults.fit(DecisionTreeRegressor(), features, np.ones_like(target))
    assert fitted.predict(features[:1]).tolist() == [1.0]


def test_class_weight_keys_are_matched_to_numeric_classes(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    features, _ = iris
    estimator = defaults.build_estimator(
        {"class_weight": '{"0": 1, "1": 3, "2": 0.5}'}, DecisionTreeClassifier()
    )

    fitted = defaults.fit(estimator, features, np.arange(150) % 3)

    assert fitted.class_weight == {0: 1, 1: 3, 2: 0.5}


def test_class_weight_keys_of_a_pipeline_step_are_matched_too(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    features, _ = iris
    template = Pipeline([("scale", StandardScaler()), ("model", DecisionTreeClassifier())])
    estimator = defaults.build_estimator({"model__class_weight": '{"1": 2}'}, template)

    fitted = defaults.fit(estimator, features, np.arange(150) % 3)

    assert fitted.named_steps["model"].class_weight == {1: 2}


def test_class_weight_naming_an_unknown_class_fails(iris: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = iris
    estimator = defaults.build_estimator({"class_weight": '{"rose": 2}'}, DecisionTreeClassifier())

    with pytest.raises(
        InputError,
        match="class_weight names classes that are not in the training data: rose; "
        "the classes are setosa, versicolor, virginica",
    ):
        defaults.fit(estimator, features, labels)


def test_data_the_estimator_cannot_fit_is_an_input_error(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    features, labels = iris
    with_missing = features.copy()
    with_missing[3, 2] = np.nan

    with pytest.raises(InputError, match=r"^LogisticRegression cannot fit the training data: "):
        defaults.fit(LogisticRegression(), with_missing, labels)


# ---------------------------------------------------------------------------- evaluate, describe


CLASSIFIERS = [
    DecisionTreeClassifier(max_depth=2, random_state=0),
    RandomForestClassifier(n_estimators=5, random_state=0),
    LogisticRegression(max_iter=500),
    make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)),
]
REGRESSORS = [
    DecisionTreeRegressor(max_depth=3, random_state=0),
    RandomForestRegressor(n_estimators=5, random_state=0),
    HistGradientBoostingRegressor(max_iter=10),
    LinearRegression(),
    make_pipeline(StandardScaler(), LinearRegression()),
]


@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_a_classifier_is_evaluated_by_accuracy_and_macro_f1(
    estimator: Any, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features, labels = iris
    fitted = defaults.fit(estimator, features[::2], labels[::2])
    predicted = fitted.predict(features[1::2])

    evaluated = defaults.evaluate(fitted, features[1::2], labels[1::2])

    assert defaults.kind(fitted) == "classifier"
    assert tuple(evaluated) == defaults.metric_names(fitted) == ("accuracy", "f1_macro")
    assert evaluated["accuracy"] == metrics.accuracy_score(labels[1::2], predicted)
    assert evaluated["f1_macro"] == metrics.f1_score(labels[1::2], predicted, average="macro")
    assert all(type(v) is float for v in evaluated.values())


@pytest.mark.parametrize("estimator", REGRESSORS, ids=lambda e: type(e).__name__)
def test_a_regressor_is_evaluated_by_rmse_mae_and_r2(
    estimator: Any, regression: tuple[np.ndarray, np.ndarray]
) -> None:
    features, target = regression
    fitted = defaults.fit(estimator, features[::2], target[::2])
    predicted = fitted.predict(features[1::2])

    evaluated = defaults.evaluate(fitted, features[1::2], target[1::2])

    assert defaults.kind(fitted) == "regressor"
    assert tuple(evaluated) == defaults.metric_names(fitted) == ("rmse", "mae", "r2")
    assert evaluated["rmse"] == pytest.approx(
        np.sqrt(np.mean((predicted - target[1::2]) ** 2)), rel=1e-9
    )
    assert evaluated["mae"] == pytest.approx(np.mean(np.abs(predicted - target[1::2])), rel=1e-9)
    assert evaluated["r2"] == pytest.approx(metrics.r2_score(target[1::2], predicted), rel=1e-9)
    assert all(type(v) is float for v in evaluated.values())


def test_metric_names_need_no_fitted_estimator() -> None:
    assert defaults.metric_names(DecisionTreeClassifier()) == defaults.CLASSIFIER_METRICS
    assert defaults.metric_names(HistGradientBoostingRegressor()) == defaults.REGRESSOR_METRICS


def test_describe_says_what_was_fitted(iris: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = iris
    tree = DecisionTreeClassifier(max_depth=2).fit(features, labels)
    forest = RandomForestClassifier(n_estimators=3).fit(features, labels)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)

    assert defaults.describe(tree) == "DecisionTreeClassifier, depth 2, 3 leaves"
    assert defaults.describe(forest) == "RandomForestClassifier of 3 estimators"
    assert defaults.describe(pipeline) == "Pipeline: StandardScaler -> LogisticRegression"
    assert defaults.describe(LinearRegression()) == "LinearRegression"


def test_metadata_has_the_classes_of_a_classifier_only(
    iris: tuple[np.ndarray, np.ndarray], regression: tuple[np.ndarray, np.ndarray]
) -> None:
    features, labels = iris
    classifier = DecisionTreeClassifier().fit(features, np.arange(150) % 3 * 10)
    regressor = DecisionTreeRegressor().fit(*regression)

    assert defaults.metadata(classifier) == {
        "estimator": "DecisionTreeClassifier",
        "kind": "classifier",
        "classes": [0, 10, 20],
    }
    assert defaults.metadata(regressor) == {
        "estimator": "DecisionTreeRegressor",
        "kind": "regressor",
    }
    json.dumps(defaults.metadata(DecisionTreeClassifier().fit(features, labels)))


# ---------------------------------------------------------------------------- save_model


def test_a_tree_is_saved_as_skops_and_as_a_fast_tree(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    fitted = DecisionTreeClassifier().fit(*iris)

    defaults.save_model(fitted, tmp_path, TREE)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fasttree.FILE, defaults.SKOPS_FILE]
    )


@pytest.mark.parametrize(
    ("estimator", "trusted"),
    [
        (RandomForestClassifier(n_estimators=2), TREE),
        (LogisticRegression(max_iter=500), []),
        (make_pipeline(StandardScaler(), DecisionTreeClassifier()), TREE),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, list) else "",
)
def test_another_estimator_is_saved_as_skops_only(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], estimator: Any, trusted: list[str]
) -> None:
    defaults.save_model(estimator.fit(*iris), tmp_path, trusted)

    assert [p.name for p in tmp_path.iterdir()] == [defaults.SKOPS_FILE]


@pytest.mark.parametrize(
    ("estimator", "untrusted"),
    [
        (DecisionTreeClassifier(), "sklearn.tree._tree.Tree"),
        (RandomForestClassifier(n_estimators=2), "sklearn.tree._tree.Tree"),
        (HistGradientBoostingRegressor(max_iter=2), BOOSTING[0]),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_a_type_skops_would_not_load_is_refused_at_save_naming_it(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], estimator: Any, untrusted: str
) -> None:
    features, labels = iris
    target = np.arange(150) % 3 if isinstance(estimator, HistGradientBoostingRegressor) else labels
    fitted = estimator.fit(features, target)

    with pytest.raises(defaults.ModelCodeError) as error:
        defaults.save_model(fitted, tmp_path, trusted_types=["some.other.Type"])

    message = str(error.value)
    assert message.startswith(f"serve could not load this {type(estimator).__name__}: ")
    assert f"skops does not trust {untrusted}." in message
    assert "add them to TRUSTED_TYPES" in message
    assert not (tmp_path / fasttree.FILE).exists()


# ---------------------------------------------------------------------------- model_fn


def test_a_saved_tree_is_served_by_the_fast_tree(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features, _ = iris
    fitted = DecisionTreeClassifier(random_state=0).fit(*iris)
    save(fitted, tmp_path, TREE)

    model = defaults.model_fn(tmp_path)

    assert isinstance(model.estimator, fasttree.DecisionTree)
    assert model.classes.tolist() == fitted.classes_.tolist()
    assert model.columns == formats.Columns(tuple(FEATURES), frozenset())
    np.testing.assert_array_equal(model.estimator.predict(features), fitted.predict(features))


def test_another_estimator_is_served_from_skops_with_the_trusted_types(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features, _ = iris
    fitted = RandomForestClassifier(n_estimators=4, random_state=0).fit(*iris)
    save(fitted, tmp_path, TREE)

    model = defaults.model_fn(tmp_path, trusted_types=TREE)

    assert isinstance(model.estimator, RandomForestClassifier)
    np.testing.assert_array_equal(model.estimator.predict(features), fitted.predict(features))
    with pytest.raises(artifacts.ModelError, match="TRUSTED_TYPES"):
        defaults.model_fn(tmp_path, trusted_types=[])


def test_serving_a_fast_tree_never_imports_scikit_learn(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    save(DecisionTreeClassifier(random_state=0).fit(*iris), tmp_path, TREE)
    program = f"""
import sys
from pathlib import Path
import numpy as np
from byoc import defaults, hooks
model = hooks.load(hooks.DEFAULT_MODULE).model_fn(Path({str(tmp_path)!r}))
rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, np.nan, 4.8, 1.8]])
for outputs in (("predicted_label",), defaults.OUTPUTS):
    asked = defaults.Request(accept="application/json", outputs=outputs)
    data = defaults.input_fn(rows, model)
    print(defaults.output_fn(defaults.predict_fn(data, model, asked), model, asked))
print(sorted({{"sklearn", "scipy", "skops", "pandas"}} & set(sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=PROGRAM_DIR,
        capture_output=True,
        text=True,
        check=True,
    )

    lines = result.stdout.splitlines()
    assert lines[0] == "['setosa', 'virginica']"
    assert lines[-1] == "[]"


@pytest.mark.parametrize("name", [fasttree.FILE, defaults.SKOPS_FILE])
def test_a_model_file_changed_after_training_is_refused(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray], name: str
) -> None:
    estimator = DecisionTreeClassifier() if name == fasttree.FILE else RandomForestClassifier(2)
    save(estimator.fit(*iris), tmp_path, TREE)
    content = bytearray((tmp_path / name).read_bytes())
    content[len(content) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(content))

    with pytest.raises(artifacts.ModelError, match=f"{name} is not the file train wrote"):
        defaults.model_fn(tmp_path, trusted_types=TREE)


def test_a_tampered_tree_with_a_matching_digest_is_still_refused(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    save(DecisionTreeClassifier().fit(*iris), tmp_path, TREE)
    path = tmp_path / fasttree.FILE
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["left"][0] = 0  # the root is its own child: a walk that never ends
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    metadata = artifacts.read_metadata(tmp_path)
    metadata["files"][fasttree.FILE] = artifacts._digest(path)
    (tmp_path / artifacts.METADATA_FILE).write_text(json.dumps(metadata))

    with pytest.raises(artifacts.ModelError, match="holds no valid tree"):
        defaults.model_fn(tmp_path)


def test_a_skops_file_that_does_not_load_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / defaults.SKOPS_FILE).write_bytes(b"not a zip")
    metadata = {"files": {defaults.SKOPS_FILE: artifacts._digest(tmp_path / defaults.SKOPS_FILE)}}
    (tmp_path / artifacts.METADATA_FILE).write_text(json.dumps(metadata))

    with pytest.raises(artifacts.ModelError, match=r"cannot load .*model\.skops"):
        defaults.model_fn(tmp_path)


def test_a_missing_model_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(artifacts.ModelError, match=r"no model: .*metadata\.json does not exist"):
        defaults.model_fn(tmp_path)


def test_a_model_file_listed_but_missing_is_a_model_error(
    tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    save(DecisionTreeClassifier().fit(*iris), tmp_path, TREE)
    (tmp_path / fasttree.FILE).unlink()

    with pytest.raises(artifacts.ModelError, match=r"incomplete model: .*tree\.npz"):
        defaults.model_fn(tmp_path)


# ---------------------------------------------------------------------------- Model


def test_columns_come_from_the_metadata_or_else_the_estimators_width() -> None:
    named = Model(LinearRegression(), {"feature_names": ["a", "b", "c"], "string_columns": [1]})
    unnamed = Model(LinearRegression().fit(np.zeros((3, 2)), [1, 2, 3]), {})

    assert named.columns == formats.Columns(("a", "b", "c"), frozenset({1}))
    assert unnamed.columns == formats.Columns(("feature_1", "feature_2"), frozenset())


def test_classes_come_from_the_estimator_or_else_the_metadata() -> None:
    fitted = DecisionTreeClassifier().fit(np.zeros((4, 1)), [3, 1, 3, 1])
    regressor = DecisionTreeRegressor().fit(np.zeros((4, 1)), [3, 1, 3, 1])

    assert Model(fitted).label_list == [1, 3]
    assert Model(object(), {"classes": ["x", "y"]}).label_list == ["x", "y"]
    assert Model(regressor, {}).classes is None
    assert Model(regressor, {}).label_list is None


# ---------------------------------------------------------------------------- input_fn


@pytest.fixture(scope="module")
def tree_model(tmp_path_factory: pytest.TempPathFactory, iris: tuple[np.ndarray, np.ndarray]):
    features, labels = iris
    with_missing = features.copy()
    with_missing[::7, 1] = np.nan
    fitted = DecisionTreeClassifier(max_depth=4, random_state=0).fit(with_missing, labels)
    model_dir = save(fitted, tmp_path_factory.mktemp("tree"), TREE)
    return fitted, defaults.model_fn(model_dir)


def test_input_fn_gives_float32_c_ordered_rows(tree_model: tuple[Any, Model]) -> None:
    _, model = tree_model
    rows = np.asfortranarray([[5.1, 3.5, 1.4, 0.2], [6.2, 2.8, 4.8, 1.8]])

    data = defaults.input_fn(rows, model)

    assert data.dtype == np.float32
    assert data.flags.c_contiguous
    np.testing.assert_array_equal(data, rows.astype(np.float32))


def test_input_fn_lets_missing_values_through(tree_model: tuple[Any, Model]) -> None:
    _, model = tree_model
    rows = np.array([[5.1, np.nan, 1.4, 0.2], [np.nan] * 4])

    data = defaults.input_fn(rows, model)

    np.testing.assert_array_equal(np.isnan(data), np.isnan(rows))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.zeros((2, 3)), "row 1: expected 4 features, got 3"),
        (np.zeros((1, 5)), "row 1: expected 4 features, got 5"),
        (np.zeros((0, 4)), "no rows: send at least one record"),
        ([[1, 2, 3, 4], [1, 2, np.inf, 4]], "row 2: feature 3 is inf, not finite"),
        ([[1, 2, 3, 4], [np.nan, 1, 1, 1], [1, 1, 1, -np.inf]], "row 3: feature 4 is -inf"),
        ([[1e39, 0, 0, 0]], "row 1: feature 1 is 1e+39, not finite"),
    ],
)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_input_fn_refuses_the_wrong_width_and_infinity(
    tree_model: tuple[Any, Model], rows: Any, message: str
) -> None:
    _, model = tree_model
    with pytest.raises(InputError) as error:
        defaults.input_fn(np.asarray(rows, dtype=np.float64), model)
    assert str(error.value).startswith(message)


# ---------------------------------------------------------------------------- predict and output

ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.2, np.nan, 4.8, 1.8], [5.9, 3.0, 5.1, 1.8], [4.9, 2.4, 3.3, 1.0]]
)
SUBSETS = [
    (PREDICTED_LABEL,),
    ("probability",),
    ("probabilities",),
    ("labels",),
    (PREDICTED_LABEL, "probability"),
    ("probability", PREDICTED_LABEL),
    ("labels", "probabilities"),
    ("probabilities", PREDICTED_LABEL, "labels"),
    OUTPUTS,
    tuple(reversed(OUTPUTS)),
]


@pytest.mark.parametrize("served", ["fast tree", "skops"])
def test_a_classifier_answers_its_labels(
    tree_model: tuple[Any, Model], tmp_path: Path, served: str
) -> None:
    fitted, model = tree_model
    if served == "skops":
        model = Model(fitted, model.metadata)

    records = serve(model, ROWS, request())

    assert records == fitted.predict(ROWS.astype(np.float32)).tolist()
    assert all(type(r) is str for r in records)


@pytest.mark.parametrize("outputs", SUBSETS, ids=",".join)
@pytest.mark.parametrize("served", ["fast tree", "skops"])
def test_a_classifier_answers_the_outputs_asked_in_their_order(
    tree_model: tuple[Any, Model], outputs: tuple[str, ...], served: str
) -> None:
    fitted, model = tree_model
    if served == "skops":
        model = Model(fitted, model.metadata)
    matrix = ROWS.astype(np.float32)
    probabilities = fitted.predict_proba(matrix)
    expected = {
        PREDICTED_LABEL: fitted.predict(matrix).tolist(),
        "probability": probabilities.max(axis=1).tolist(),
        "probabilities": probabilities.tolist(),
        "labels": [fitted.classes_.tolist()] * len(ROWS),
    }

    records = serve(model, ROWS, request(*outputs))

    if outputs == (PREDICTED_LABEL,):
        assert records == expected[PREDICTED_LABEL]
        return
    assert len(records) == len(ROWS)
    for i, record in enumerate(records):
        assert list(record) == list(outputs)
        for name in outputs:
            if name in ("probability", "probabilities"):
                np.testing.assert_allclose(record[name], expected[name][i], rtol=1e-12)
            else:
                assert record[name] == expected[name][i]
    json.dumps(records)


def test_probabilities_are_a_row_per_record_of_the_estimators_own(
    tree_model: tuple[Any, Model],
) -> None:
    fitted, model = tree_model

    prediction = defaults.predict_fn(ROWS.astype(np.float32), model, request(*OUTPUTS))

    assert isinstance(prediction, Probabilities)
    assert prediction.labels.tolist() == fitted.predict(ROWS.astype(np.float32)).tolist()
    assert prediction.probabilities.shape == (len(ROWS), 3)


def test_a_forest_answers_probabilities_too(iris: tuple[np.ndarray, np.ndarray]) -> None:
    features, _ = iris
    fitted = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        features, np.arange(150) % 3 * 10
    )
    model = Model(fitted, {"feature_names": FEATURES})

    records = serve(model, features[:3], request("labels", PREDICTED_LABEL))

    assert records == [
        {"labels": [0, 10, 20], PREDICTED_LABEL: label}
        for label in fitted.predict(features[:3]).tolist()
    ]


@pytest.mark.parametrize("served", ["fast tree", "skops"])
def test_a_regressor_answers_its_values(
    tmp_path: Path, regression: tuple[np.ndarray, np.ndarray], served: str
) -> None:
    features, target = regression
    fitted = DecisionTreeRegressor(max_depth=5, random_state=0).fit(features, target)
    model = defaults.model_fn(save(fitted, tmp_path, TREE), trusted_types=TREE)
    if served == "skops":
        model = Model(fitted, model.metadata)
    rows = features[:6].astype(np.float64)
    rows[2, 1] = np.nan

    records = serve(model, rows, request())

    assert records == fitted.predict(rows.astype(np.float32)).tolist()
    assert all(type(r) is float for r in records)
    with pytest.raises(InputError, match="predicts values, not classes"):
        serve(model, rows, request(PREDICTED_LABEL, "probability"))


def test_a_missing_value_for_a_model_that_refuses_them_is_an_input_error_naming_the_row(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    fitted = LogisticRegression(max_iter=500).fit(*iris)
    model = Model(fitted, {"feature_names": FEATURES})
    rows = ROWS.copy()
    rows[1, 1] = 3.0
    rows[2, 2] = np.nan

    for outputs in ((PREDICTED_LABEL,), OUTPUTS):
        with pytest.raises(InputError) as error:
            serve(model, rows, request(*outputs))
        assert str(error.value) == (
            "row 3: feature 3 is missing, and this LogisticRegression cannot take missing values"
        )
    rows[2, 2] = 1.0
    assert len(serve(model, rows, request())) == len(rows)


def test_another_value_error_of_the_estimator_is_not_the_clients(tree_model: Any) -> None:
    class Broken:
        classes_ = np.array(["a", "b"])

        def predict(self, data: Any) -> Any:
            raise ValueError("the model's own bug")

    with pytest.raises(ValueError, match="the model's own bug") as error:
        defaults.predict_fn(np.ones((1, 2), dtype=np.float32), Model(Broken()), request())
    assert not isinstance(error.value, InputError)


def test_an_input_error_of_the_estimator_passes_through() -> None:
    class Picky:
        def predict(self, data: Any) -> Any:
            raise InputError("row 1: out of range")

    with pytest.raises(InputError, match=r"^row 1: out of range$"):
        defaults.predict_fn(np.full((1, 2), np.nan), Model(Picky()), request())


# ---------------------------------------------------------------------------- string columns


@pytest.fixture(scope="module")
def categorical() -> tuple[Any, Model]:
    """A Pipeline over a string column and two numbers, trained on a DataFrame."""
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 200),
            "width": rng.normal(size=200).astype(np.float32),
            "height": rng.normal(size=200).astype(np.float32),
        }
    )
    labels = np.where((frame["colour"] == "red") | (frame["width"] > 1), "yes", "no")
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])],
                    remainder="passthrough",
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, labels)
    metadata = {"feature_names": ["colour", "width", "height"], "string_columns": [0]}
    return pipeline, Model(pipeline, metadata)


def object_rows(*rows: list[Any]) -> np.ndarray:
    matrix = np.empty((len(rows), 3), dtype=object)
    matrix[:] = [list(r) for r in rows]
    return matrix


def test_string_columns_are_a_data_frame_with_the_training_names(
    categorical: tuple[Any, Model],
) -> None:
    fitted, model = categorical
    rows = object_rows(["red", 0.5, 1.0], ["blue", 2.0, -1.0], ["purple", 0.0, 0.0])

    data = defaults.input_fn(rows, model)

    assert list(data.columns) == ["colour", "width", "height"]
    assert data["colour"].tolist() == ["red", "blue", "purple"]
    assert data["width"].dtype == np.float32
    assert serve(model, rows, request()) == fitted.predict(data).tolist()


def test_infinity_in_a_number_column_beside_strings_is_refused_naming_the_column(
    categorical: tuple[Any, Model],
) -> None:
    _, model = categorical
    rows = object_rows(["red", 0.5, 1.0], ["blue", 2.0, np.inf])

    with pytest.raises(InputError, match=r"^row 2: height is inf, not finite"):
        defaults.input_fn(rows, model)


def test_a_missing_value_beside_strings_is_named_by_its_column(
    categorical: tuple[Any, Model],
) -> None:
    _, model = categorical
    rows = object_rows(["red", 0.5, 1.0], ["blue", np.nan, 1.0])

    with pytest.raises(InputError, match=r"^row 2: width is missing, and this Pipeline cannot"):
        serve(model, rows, request())


def test_a_crafted_model_file_calling_os_system_is_refused_when_loaded(tmp_path: Path) -> None:
    import os

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    crafted = FunctionTransformer(func=os.system, kw_args={"command": "touch pwned"})
    model_dir = tmp_path / "model"
    artifacts.save(
        model_dir, lambda staging: skops.io.dump(crafted, staging / defaults.SKOPS_FILE), {}
    )

    with pytest.raises(artifacts.ModelError, match=r"system"):
        defaults.model_fn(model_dir, trusted_types=["sklearn.tree._tree.Tree"])
    assert not (tmp_path / "pwned").exists()
    assert not Path("pwned").exists()
