"""Gradient boosting (HistGradientBoostingRegressor) on data with missing values: only
`estimator()` and TRUSTED_TYPES differ from the default model module.

Empty and NA cells (and JSON null) reach the model as NaN, in training and in serving alike, and
this estimator handles NaN itself: no imputing step is needed. It predicts with OpenMP threads,
which `serve` starts only in its workers, never before they are forked.
"""

TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
"""What skops must load beyond its defaults: the boosted trees (`train` lists what is missing)."""


def estimator():
    """The estimator to train, with its default hyperparameters."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=0)
