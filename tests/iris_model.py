"""A small fitted model for tests and config checks, saved the way `train` saves one.

python tests/iris_model.py MODEL_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

import model

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def fit_iris(**hyperparameters: Any) -> tuple[DecisionTreeClassifier, np.ndarray]:
    """A tree fitted on iris with string labels and float32 features, and those features."""
    iris = load_iris()
    features = iris.data.astype(np.float32)
    labels = np.array(iris.target_names)[iris.target]
    estimator = DecisionTreeClassifier(random_state=0, **hyperparameters).fit(features, labels)
    return estimator, features


def save_iris_model(model_dir: Path, **hyperparameters: Any) -> DecisionTreeClassifier:
    """Fit on iris and save the model with the metadata `train` writes."""
    estimator, features = fit_iris(**hyperparameters)
    metadata = {
        "algorithm": "decision_tree",
        "n_features": features.shape[1],
        "feature_names": FEATURES,
        "classes": [str(c) for c in estimator.classes_],
        "label_column": 0,
        "hyperparameters": hyperparameters,
        "training_rows": len(features),
    }
    model.save(estimator, model_dir, metadata)
    return estimator


if __name__ == "__main__":
    save_iris_model(Path(sys.argv[1]), max_leaf_nodes=5)
