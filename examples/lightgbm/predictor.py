"""LightGBM, saved in its own text format and served by its Booster: no pickle, no skops.

Beyond `estimator()`, this module defines three hooks (byoc/defaults.py has the others):
`save_model` writes LightGBM's model.txt instead of a skops file, `model_fn` loads it into a
`lightgbm.Booster` wrapped to predict like a scikit-learn classifier, and `describe` logs the
number of trees. Training is the default: `fit`, then the metrics of any classifier.
"""

from pathlib import Path

import numpy as np

MODEL_FILE = "model.txt"


def estimator():
    """The estimator to train, with its default hyperparameters."""
    from lightgbm import LGBMClassifier

    # Fixed, so that the same data and hyperparameters give the same trees; verbose=-1: no
    # warnings about splits that a small data set cannot make.
    return LGBMClassifier(random_state=0, verbose=-1)


def describe(estimator):
    """The fitted model in a few words, for the log."""
    rounds, trees = estimator.booster_.current_iteration(), estimator.booster_.num_trees()
    return f"{type(estimator).__name__}: {rounds} rounds, {trees} trees"


def save_model(estimator, directory: Path) -> None:
    """LightGBM's own text file; `train` adds metadata.json (features, classes, digests)."""
    estimator.booster_.save_model(directory / MODEL_FILE)


def model_fn(model_dir: Path):
    """The Booster in model.txt, checked against the digest `train` recorded."""
    import lightgbm

    from byoc import artifacts, defaults

    metadata = artifacts.read_metadata(model_dir)
    path = artifacts.model_file(model_dir, metadata, MODEL_FILE)
    booster = lightgbm.Booster(model_file=str(path))
    return defaults.Model(BoosterClassifier(booster, metadata["classes"]), metadata)


class BoosterClassifier:
    """A Booster with what serving asks of a classifier: predict, predict_proba and classes_."""

    def __init__(self, booster, classes):
        self.booster = booster
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = booster.num_feature()

    def predict_proba(self, features):
        probabilities = self.booster.predict(features)
        if probabilities.ndim == 1:
            # Two classes: the Booster gives the second one's probability only.
            return np.column_stack([1 - probabilities, probabilities])
        return probabilities

    def predict(self, features):
        return self.classes_.take(self.predict_proba(features).argmax(axis=1))
