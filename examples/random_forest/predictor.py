"""A random forest on iris, answering class probabilities: only `estimator()` and TRUSTED_TYPES
differ from the default model module (container/decision_trees/predictor.py).

The probabilities need no code: set SAGEMAKER_INFERENCE_OUTPUT on the endpoint, or ask for them
per request with `Accept: application/json;verbose` (README.md shows both).
"""

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
"""What skops must load beyond its defaults: the forest's trees (`train` lists what is missing)."""


def estimator():
    """The estimator to train, with its default hyperparameters."""
    from sklearn.ensemble import RandomForestClassifier

    # Fixed, so that the same data and hyperparameters give the same forest.
    return RandomForestClassifier(n_estimators=100, random_state=0)
