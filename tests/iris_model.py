"""A small fitted model of the demo model module, saved the way `train` saves one.

python tests/iris_model.py MODEL_DIR    (with container/decision_trees on PYTHONPATH)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from byoc import artifacts, defaults, hooks

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def demo_hooks() -> hooks.Hooks:
    """The hooks of the demo model module (container/decision_trees/predictor.py)."""
    return hooks.load(hooks.DEFAULT_MODULE)


def fit_iris(**parameters: Any) -> tuple[DecisionTreeClassifier, np.ndarray]:
    """The demo's tree fitted on iris with string labels and float32 features, and those features.

    `parameters` are hyperparameters as a job receives them (values or their JSON text).
    """
    model = demo_hooks()
    iris = load_iris()
    features = iris.data.astype(np.float32)
    labels = np.array(iris.target_names)[iris.target]
    estimator = model.fit(model.build_estimator(parameters), features, labels)
    return estimator, features


def save_iris_model(model_dir: Path, **parameters: Any) -> DecisionTreeClassifier:
    """Fit on iris and save the model with the demo's save_model hook and `train`'s metadata."""
    estimator, features = fit_iris(**parameters)
    metadata = {
        **defaults.metadata(estimator),
        "n_features": features.shape[1],
        "feature_names": FEATURES,
        "string_columns": [],
        "label_column": None,
        # As train records them: every parameter of the estimator that JSON can hold.
        "hyperparameters": {
            name: value
            for name, value in estimator.get_params(deep=True).items()
            if isinstance(value, str | int | float | bool | list | dict | None)
        },
        "training_rows": len(features),
    }
    model = demo_hooks()
    artifacts.save(model_dir, lambda staging: model.save_model(estimator, staging), metadata)
    return estimator


if __name__ == "__main__":
    save_iris_model(Path(sys.argv[1]), max_leaf_nodes=5)
