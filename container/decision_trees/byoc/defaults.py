"""The default of every hook that the model module (predictor.py) may define, for any estimator.

A hook you define replaces its default only; the others stay. To change a default a little,
call it from your own hook: `from byoc import defaults`, then `defaults.fit(estimator, x, y)`.

Training: `build_estimator(hyperparameters)`, `fit(estimator, features, labels)`,
`evaluate(estimator, features, labels)`, `describe(estimator)`, `save_model(estimator, directory)`.
Serving: `model_fn(model_dir)`, `input_fn(rows, model)`, `predict_fn(data, model, request)`,
`output_fn(prediction, model, request)`. scikit-learn is imported only where it is needed, so that
a tree served by `fasttree` never loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from byoc import artifacts, fasttree, formats, settings
from byoc.errors import InputError

SKOPS_FILE = "model.skops"

CLASSIFIER_METRICS = ("accuracy", "f1_macro")
REGRESSOR_METRICS = ("rmse", "mae", "r2")

PREDICTED_LABEL = "predicted_label"
OUTPUTS = settings.OUTPUTS
"""What a classifier can answer per record, as SageMaker Autopilot names it
(SAGEMAKER_INFERENCE_OUTPUT); a regressor answers predicted_label (its value) only."""


class ModelCodeError(Exception):
    """The model module's code or settings cannot work (not the job's input): exit 1."""


# ---------------------------------------------------------------------------- training


def build_estimator(hyperparameters: Mapping[str, Any], template: Any) -> Any:
    """A copy of `template` (the module's `estimator()`) with the job's hyperparameters set.

    Their names are the estimator's `get_params()` names (`model__max_depth` in a Pipeline), and
    scikit-learn validates their values; InputError says what is wrong.
    """
    from sklearn.base import clone

    from byoc import hyperparameters as parameters

    return parameters.configure(clone(template), hyperparameters)


def fit(estimator: Any, features: Any, labels: np.ndarray) -> Any:
    """`estimator.fit(features, labels)`; InputError when the data cannot train it."""
    if kind(estimator) == "classifier":
        classes = np.unique(labels)
        if len(classes) < 2:
            raise InputError(
                f"The training data has a single class ({classes.tolist()[0]!r} in all "
                f"{len(labels)} rows): a classifier needs at least two."
            )
        _class_weight_keys(estimator, classes)
    try:
        return estimator.fit(features, labels)
    except (ValueError, TypeError) as e:
        # TypeError too: a hyperparameter can replace a Pipeline's step with a non-estimator.
        raise InputError(f"{type(estimator).__name__} cannot fit the training data: {e}") from e


def _class_weight_keys(estimator: Any, classes: np.ndarray) -> None:
    """JSON object keys are strings: map class_weight's keys onto the classes, maybe numbers."""
    by_name = {str(c): c for c in classes.tolist()}
    for name, value in estimator.get_params(deep=True).items():
        if not (name == "class_weight" or name.endswith("__class_weight")):
            continue
        if not isinstance(value, dict):
            continue
        unknown = sorted(set(map(str, value)) - set(by_name))
        if unknown:
            raise InputError(
                f"Hyperparameter {name} names classes that are not in the training data: "
                f"{', '.join(unknown)}; the classes are {', '.join(by_name)}."
            )
        estimator.set_params(**{name: {by_name[str(k)]: w for k, w in value.items()}})


def evaluate(estimator: Any, features: Any, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 for a classifier; RMSE, MAE and R² for a regressor."""
    from sklearn import metrics

    predicted = estimator.predict(features)
    if kind(estimator) == "classifier":
        return {
            "accuracy": float(metrics.accuracy_score(labels, predicted)),
            "f1_macro": float(
                metrics.f1_score(labels, predicted, average="macro", zero_division=0)
            ),
        }
    return {
        "rmse": float(metrics.root_mean_squared_error(labels, predicted)),
        "mae": float(metrics.mean_absolute_error(labels, predicted)),
        "r2": float(metrics.r2_score(labels, predicted)),
    }


def metric_names(estimator: Any) -> tuple[str, ...]:
    """The names `evaluate` reports for this estimator."""
    return CLASSIFIER_METRICS if kind(estimator) == "classifier" else REGRESSOR_METRICS


def describe(estimator: Any) -> str:
    """The fitted model in a few words, for the log."""
    name = type(estimator).__name__
    if hasattr(estimator, "get_depth") and hasattr(estimator, "get_n_leaves"):
        return f"{name}, depth {estimator.get_depth()}, {estimator.get_n_leaves()} leaves"
    if hasattr(estimator, "estimators_") and hasattr(estimator.estimators_, "__len__"):
        return f"{name} of {len(estimator.estimators_)} estimators"
    if hasattr(estimator, "steps"):
        return "Pipeline: " + " -> ".join(type(step).__name__ for _, step in estimator.steps)
    return name


def save_model(estimator: Any, directory: Path, trusted_types: Sequence[str] = ()) -> None:
    """skops (which cannot run code when loaded), plus `fasttree`'s file for a single tree.

    ModelCodeError when skops would refuse to load the file with `trusted_types` (the model
    module's TRUSTED_TYPES): better found now than when an endpoint starts.
    """
    import skops.io

    path = directory / SKOPS_FILE
    skops.io.dump(estimator, path)
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted_types))
    if untrusted:
        raise ModelCodeError(
            f"serve could not load this {type(estimator).__name__}: skops does not trust "
            f"{', '.join(untrusted)}. If you trust them, add them to TRUSTED_TYPES in your "
            "model module (predictor.py)."
        )
    if fasttree.supports(estimator):
        fasttree.export(estimator, directory / fasttree.FILE)


def kind(estimator: Any) -> str:
    """ "classifier" or "regressor", as scikit-learn's tags say (or the estimator's methods)."""
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            return "classifier"
        if is_regressor(estimator):
            return "regressor"
    except (ImportError, AttributeError, TypeError):
        pass
    return "classifier" if hasattr(estimator, "predict_proba") else "regressor"


def metadata(estimator: Any) -> dict[str, Any]:
    """What serving needs to know about a fitted estimator, beyond its features."""
    classes = getattr(estimator, "classes_", None)
    described = {"estimator": type(estimator).__name__, "kind": kind(estimator)}
    if classes is not None and described["kind"] == "classifier":
        described["classes"] = np.asarray(classes).tolist()
    return described


# ---------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class Request:
    """What the client asked for, beyond its rows."""

    accept: str
    """The negotiated response media type (one of formats.MEDIA_TYPES)."""
    outputs: tuple[str, ...] = (PREDICTED_LABEL,)
    """Which of OUTPUTS to answer per record, in order."""


@dataclass(frozen=True)
class Model:
    """A loaded model: anything that predicts like a scikit-learn estimator, and its metadata."""

    estimator: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def columns(self) -> formats.Columns:
        """The features the model reads, in order, and which hold strings."""
        names = self.metadata.get("feature_names")
        if names is None:
            names = [f"feature_{i + 1}" for i in range(int(self.estimator.n_features_in_))]
        return formats.Columns(tuple(names), frozenset(self.metadata.get("string_columns", ())))

    @functools.cached_property
    def classes(self) -> np.ndarray | None:
        """The classes in the order of predict_proba's columns; None for a regressor."""
        classes = getattr(self.estimator, "classes_", None)
        if classes is None and "classes" in self.metadata:
            classes = self.metadata["classes"]
        return None if classes is None else np.asarray(classes)

    @functools.cached_property
    def label_list(self) -> list[Any] | None:
        """The classes as JSON values, for the `labels` output."""
        return None if self.classes is None else self.classes.tolist()

    @functools.cached_property
    def label_objects(self) -> np.ndarray:
        """The classes as an array of Python objects: a take from it shares them between rows."""
        return np.array(self.label_list, dtype=object)


def columns_of(model: Any, model_dir: Path) -> formats.Columns:
    """The features requests are decoded into: what model_fn answered holds them (`columns`, as
    Model does), else the model's metadata in `model_dir` names them."""
    columns = getattr(model, "columns", None)
    if isinstance(columns, formats.Columns):
        return columns
    return Model(model, artifacts.read_metadata(model_dir)).columns


@dataclass(frozen=True)
class Probabilities:
    """predict_fn's answer when probabilities are asked for: one row per record."""

    labels: np.ndarray
    probabilities: np.ndarray


def model_fn(model_dir: Path, trusted_types: Sequence[str] = ()) -> Model:
    """The model `save_model` wrote: the tree's own file when there is one, else skops."""
    metadata = artifacts.read_metadata(model_dir)
    files = metadata.get("files", {})
    if fasttree.FILE in files:
        path = artifacts.model_file(model_dir, metadata, fasttree.FILE)
        try:
            return Model(fasttree.load(path), metadata)
        except fasttree.TreeFileError as e:
            raise artifacts.ModelError(str(e)) from e
    import skops.io

    path = artifacts.model_file(model_dir, metadata, SKOPS_FILE)
    try:
        estimator = skops.io.load(path, trusted=list(trusted_types))
    except Exception as e:
        raise artifacts.ModelError(
            f"cannot load {path}: {type(e).__name__}: {e}. skops loads only the types in the "
            "model module's TRUSTED_TYPES."
        ) from e
    return Model(estimator, metadata)


def input_fn(rows: np.ndarray, model: Model) -> Any:
    """The decoded rows checked against the model: float32 features, or a DataFrame with strings.

    Missing values are NaN; infinity is refused (InputError, a 400 naming the row).
    """
    columns = model.columns
    if rows.shape[0] == 0:
        raise InputError("no rows: send at least one record")
    if rows.shape[1] != columns.width:
        raise InputError(f"row 1: expected {columns.width} features, got {rows.shape[1]}")
    if columns.strings:
        return _frame(rows, columns)
    with np.errstate(over="ignore"):  # beyond float32's range is infinity, refused below
        matrix = np.ascontiguousarray(rows, dtype=np.float32)
    # A float64 sum of float32 values cannot overflow, so it is NaN or infinite only if a value
    # is; the exact check runs only then.
    if not np.isfinite(matrix.sum(dtype=np.float64)):
        _refuse_infinity(matrix, rows)
    return matrix


def _refuse_infinity(matrix: np.ndarray, rows: np.ndarray) -> None:
    infinite = np.argwhere(np.isinf(matrix))
    if len(infinite):
        row, column = infinite[0]
        raise InputError(f"row {row + 1}: feature {column + 1} is {rows[row, column]}, not finite")


def _frame(rows: np.ndarray, columns: formats.Columns) -> Any:
    """A pandas DataFrame with the training columns' names: strings stay, numbers are float32."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(columns.names))
    for i, name in enumerate(columns.names):
        if i in columns.strings:
            continue
        values = frame[name].to_numpy(dtype=np.float32)
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise InputError(f"row {row + 1}: {name} is {values[row]}, not finite")
        frame[name] = values
    return frame


def predict_fn(data: Any, model: Model, request: Request) -> Any:
    """The estimator's predictions, or its Probabilities when the request asks for them."""
    estimator = model.estimator
    try:
        if request.outputs == (PREDICTED_LABEL,):
            with _checked(data, estimator):
                return estimator.predict(data)
        if model.classes is None or not hasattr(estimator, "predict_proba"):
            raise InputError(
                f"this model predicts values, not classes: it can answer {PREDICTED_LABEL} only"
            )
        with _checked(data, estimator):
            probabilities = np.asarray(estimator.predict_proba(data))
        return Probabilities(model.label_objects.take(probabilities.argmax(axis=1)), probabilities)
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        missing = _first_missing(data)
        if missing is None:
            raise
        row, column = missing
        raise InputError(
            f"row {row + 1}: {column} is missing, and this {type(estimator).__name__} cannot "
            "take missing values"
        ) from None


def _checked(data: Any, estimator: Any) -> AbstractContextManager[Any]:
    """scikit-learn without the checks input_fn already made, when they are all it would find.

    A matrix with neither NaN nor infinity needs no finiteness check, and the estimator's
    parameters were validated when it was fitted: scikit-learn then spends less per call.
    """
    if isinstance(estimator, fasttree.DecisionTree) or not isinstance(data, np.ndarray):
        return nullcontext()
    if data.dtype.kind != "f" or not np.isfinite(data.sum(dtype=np.float64)):
        return nullcontext()
    import sklearn

    return sklearn.config_context(assume_finite=True, skip_parameter_validation=True)


def _first_missing(data: Any) -> tuple[int, str] | None:
    """The row and feature of the first missing value in `data`, if it has one."""
    if isinstance(data, np.ndarray) and data.dtype.kind == "f":
        found = np.argwhere(np.isnan(data))
        return (int(found[0][0]), f"feature {int(found[0][1]) + 1}") if len(found) else None
    isna = getattr(data, "isna", None)
    if isna is None:
        return None
    missing = isna().to_numpy()
    found = np.argwhere(missing)
    return (int(found[0][0]), str(data.columns[found[0][1]])) if len(found) else None


def output_fn(prediction: Any, model: Model, request: Request) -> list[Any]:
    """One record per row: the prediction, or a dict of the outputs the request asked for."""
    if not isinstance(prediction, Probabilities):
        return np.asarray(prediction).tolist()
    labels = prediction.labels.tolist()
    probabilities = prediction.probabilities
    columns = {
        PREDICTED_LABEL: labels,
        "probability": probabilities.max(axis=1).tolist(),
        "probabilities": probabilities.tolist(),
        "labels": [model.label_list] * len(labels),
    }
    chosen = [(name, columns[name]) for name in request.outputs]
    return [{name: values[i] for name, values in chosen} for i in range(len(labels))]
