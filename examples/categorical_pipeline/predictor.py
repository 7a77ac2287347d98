"""A scikit-learn Pipeline over text and number columns: only `estimator()` and TRUSTED_TYPES
differ from the default model module.

A training column whose cells are not all numbers is a text column: the features then reach the
model as a pandas DataFrame (columns feature_1, feature_2, ... for CSV; the file's own names for
Parquet), and serving accepts rows with text cells, in CSV or JSON, and JSON objects keyed by the
column names. The pipeline picks its columns by type, so the same code trains from either format.
"""

TRUSTED_TYPES = ["numpy.dtype", "sklearn.compose._column_transformer.make_column_selector"]
"""What skops must load beyond its defaults (`train` lists what is missing)."""


def estimator():
    """One-hot encoded text columns and imputed, scaled numbers, into a logistic regression."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            # A category that training never saw (or a missing one) encodes as all zeros.
            (
                "text",
                OneHotEncoder(handle_unknown="ignore"),
                make_column_selector(dtype_exclude="number"),
            ),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                make_column_selector(dtype_include="number"),
            ),
        ]
    )
    # Hyperparameters are named after the steps: model__C, columns__numbers__simpleimputer__...
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=1000))])
