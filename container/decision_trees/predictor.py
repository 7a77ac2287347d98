"""YOUR MODEL: what `train` fits and `serve` predicts with. Change this file to bring your own.

The demo is a scikit-learn decision tree. Any scikit-learn estimator or Pipeline works by changing
`estimator()` alone: its `get_params()` names are the training job's hyperparameters, validated by
scikit-learn, and the metrics, the model files and serving follow from it. Each hook below may be
defined here to replace its default (in byoc/defaults.py, which you can call from your own):

    training   build_estimator(hyperparameters) -> estimator   (default: estimator() + set_params)
               fit(estimator, features, labels) -> fitted      (default: estimator.fit)
               evaluate(estimator, features, labels) -> {name: value}
               metric_names(estimator) -> names                (must match evaluate's)
               describe(estimator) -> str                      (one log line)
               save_model(estimator, directory)                (default: skops; + tree.npz)
    serving    model_fn(model_dir) -> model                    (default: defaults.Model)
               input_fn(rows, model) -> data                   (rows: decoded 2-D array)
               predict_fn(data, model, request) -> prediction  (request.accept, request.outputs)
               output_fn(prediction, model, request) -> records (one JSON-able value per row)

Raise `byoc.errors.InputError` for a problem with the caller's data: a 400 when serving, exit 2
with a failure file when training. Import heavy libraries inside the hooks, as below: `serve`
imports this module, and a decision tree is served without loading scikit-learn at all.
"""

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
"""Types beyond skops' defaults that loading the saved model may create (`train` says if one is
missing). Loading never trusts what the file itself lists."""


def estimator():
    """The estimator to train, with its default hyperparameters."""
    from sklearn.tree import DecisionTreeClassifier

    # Fixed, so that the same data and hyperparameters give the same tree.
    return DecisionTreeClassifier(random_state=0)
