"""Write the examples' data files: the same files every time (`git diff` shows nothing new).

    .venv/bin/python examples/make_data.py

The random forest reuses local_test's iris; the others come from scikit-learn's bundled data sets
or from a fixed random generator. Configuration files (hyperparameters.json, ...) are written by
hand and are not touched here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_diabetes, load_wine

EXAMPLES = Path(__file__).resolve().parent
LOCAL_TEST = EXAMPLES.parent / "local_test"
Row = list[object]


def cell(value: object) -> str:
    """A CSV cell: None is an empty cell, a float as short as it prints exactly."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return format(float(value), "g")
    return str(value)


def write_csv(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(map(cell, row)) + "\n" for row in rows))


def data_dir(example: str, channel: str, test_dir: str = "test_dir") -> Path:
    return EXAMPLES / example / test_dir / "input" / "data" / channel


def random_forest() -> None:
    """Iris, as in local_test."""
    for channel in ("training", "validation"):
        source = LOCAL_TEST / "test_dir" / "input" / "data" / channel / "iris.csv"
        target = data_dir("random_forest", channel) / "iris.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    shutil.copyfile(LOCAL_TEST / "payload.csv", EXAMPLES / "random_forest" / "payload.csv")


def gradient_boosting_regressor() -> None:
    """Diabetes progression (442 patients, 10 measurements), ~10% of the cells blank or NA."""
    data = load_diabetes(scaled=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.target))
    blank = rng.random(data.data.shape) < 0.1
    spelled_na = rng.random(data.data.shape) < 0.5
    rows = [
        [int(data.target[i])]
        + [
            ("NA" if spelled_na[i, j] else None) if blank[i, j] else float(data.data[i, j])
            for j in range(data.data.shape[1])
        ]
        for i in order
    ]
    write_csv(data_dir("gradient_boosting_regressor", "training") / "diabetes.csv", rows[:352])
    write_csv(data_dir("gradient_boosting_regressor", "validation") / "diabetes.csv", rows[352:432])
    payload = [row[1:] for row in rows[432:]]
    assert {"NA", None} <= {c for row in payload for c in row}, "the payload lacks a blank kind"
    write_csv(EXAMPLES / "gradient_boosting_regressor" / "payload.csv", payload)


def categorical_pipeline() -> None:
    """Which plan a customer picks, from region (text), age and income (~8% unknown)."""
    rng = np.random.default_rng(0)
    n = 500
    effects = {"north": 1.0, "south": -1.0, "east": 0.0, "west": 0.5}
    region = rng.choice(list(effects), n)
    age = rng.integers(18, 80, n)
    income = rng.normal(55, 18, n).clip(12, None).round(1)
    score = (
        0.05 * (age - 45)
        + 0.06 * (income - 55)
        + np.array([effects[r] for r in region])
        + rng.normal(0, 0.7, n)
    )
    plan = np.where(score > 0.8, "premium", np.where(score < -0.8, "basic", "plus"))
    known = rng.random(n) >= 0.08
    columns = {
        "region": [str(r) for r in region],
        "age": [int(a) for a in age],
        "income": [float(x) if k else None for x, k in zip(income, known, strict=True)],
        "plan": [str(p) for p in plan],
    }
    rows = [[p, r, a, x] for r, a, x, p in zip(*columns.values(), strict=True)]
    table = pa.table(columns)
    for channel, part in (("training", slice(0, 400)), ("validation", slice(400, n))):
        write_csv(data_dir("categorical_pipeline", channel) / "customers.csv", rows[part])
        target = data_dir("categorical_pipeline", channel, "test_dir_parquet")
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table[part], target / "customers.parquet")
    # Each region, a region the model never saw (central) and unknown incomes.
    payload = [
        ["north", 34, 52.5],
        ["south", 61, None],
        ["east", 45, 80.2],
        ["west", 23, 31.0],
        ["central", 50, 60.0],
        ["north", 70, "NA"],
    ]
    write_csv(EXAMPLES / "categorical_pipeline" / "payload.csv", payload)


def lightgbm() -> None:
    """Wine (178 wines, 13 measurements), three cultivars."""
    data = load_wine()
    order = np.random.default_rng(0).permutation(len(data.target))
    rows = [[data.target_names[data.target[i]], *map(float, data.data[i])] for i in order]
    write_csv(data_dir("lightgbm", "training") / "wine.csv", rows[:142])
    write_csv(data_dir("lightgbm", "validation") / "wine.csv", rows[142:])
    write_csv(EXAMPLES / "lightgbm" / "payload.csv", [row[1:] for row in rows[142:150]])


if __name__ == "__main__":
    random_forest()
    gradient_boosting_regressor()
    categorical_pipeline()
    lightgbm()
