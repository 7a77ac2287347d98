"""The algorithm: a scikit-learn DecisionTreeClassifier, its hyperparameters and its metrics.

To train another estimator, change this file (and model.TRUSTED_TYPES, the types skops may load);
the SageMaker plumbing around it stays as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.tree import DecisionTreeClassifier

from failure import InputError
from hyperparameters import Choice, Hyperparameter, Integer, Null, Number, Weights

NAME = "DecisionTreeClassifier"

HYPERPARAMETERS = {
    "criterion": Hyperparameter("gini", (Choice(("gini", "entropy", "log_loss")),)),
    "splitter": Hyperparameter("best", (Choice(("best", "random")),)),
    "max_depth": Hyperparameter(None, (Integer(low=1), Null("no limit"))),
    "min_samples_split": Hyperparameter(
        2, (Integer(low=2), Number(0.0, 1.0, low_open=True, fraction=True))
    ),
    "min_samples_leaf": Hyperparameter(
        1, (Integer(low=1), Number(0.0, 1.0, low_open=True, high_open=True, fraction=True))
    ),
    "min_weight_fraction_leaf": Hyperparameter(0.0, (Number(0.0, 0.5),)),
    "max_features": Hyperparameter(
        None,
        (
            Integer(low=1),
            Number(0.0, 1.0, low_open=True, fraction=True),
            Choice(("sqrt", "log2")),
            Null("all features"),
        ),
    ),
    "max_leaf_nodes": Hyperparameter(None, (Integer(low=2), Null("no limit"))),
    "min_impurity_decrease": Hyperparameter(0.0, (Number(low=0.0),)),
    "class_weight": Hyperparameter(None, (Choice(("balanced",)), Weights(), Null("all 1"))),
    "ccp_alpha": Hyperparameter(0.0, (Number(low=0.0),)),
    # Fixed by default so that the same data and hyperparameters give the same tree.
    "random_state": Hyperparameter(0, (Integer(0, 2**32 - 1), Null("a new seed every time"))),
}
"""DecisionTreeClassifier's parameters, with scikit-learn's types, ranges and defaults."""


def fit(features: np.ndarray, labels: np.ndarray, params: dict[str, Any]) -> DecisionTreeClassifier:
    """Fit a tree; InputError when the data cannot train a classifier."""
    classes = np.unique(labels)
    if len(classes) < 2:
        raise InputError(
            f"The training data has a single class ({classes.tolist()[0]!r} in all "
            f"{len(labels)} rows): a classifier needs at least two."
        )
    params = {**params, "class_weight": _class_weight(params["class_weight"], classes)}
    estimator = DecisionTreeClassifier(**params)
    try:
        return estimator.fit(features, labels)
    except ValueError as e:
        raise InputError(f"scikit-learn cannot fit the training data: {e}") from e


def _class_weight(value: Any, classes: np.ndarray) -> Any:
    """JSON object keys are strings: map them onto the classes, which may be numbers."""
    if not isinstance(value, dict):
        return value
    by_name = {str(c): c for c in classes.tolist()}
    unknown = sorted(set(value) - set(by_name))
    if unknown:
        raise InputError(
            f"Hyperparameter class_weight names classes that are not in the training data: "
            f"{', '.join(unknown)}; the classes are {', '.join(by_name)}."
        )
    return {by_name[name]: weight for name, weight in value.items()}


def describe(estimator: DecisionTreeClassifier) -> str:
    """The fitted model in a few words, for the log."""
    return f"depth {estimator.get_depth()}, {estimator.get_n_leaves()} leaves"


def evaluate(estimator: DecisionTreeClassifier, features: np.ndarray, labels: np.ndarray) -> dict:
    """The metrics of the model on one data set, by name."""
    predicted = estimator.predict(features)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, average="macro", zero_division=0)),
    }
