"""Where a 1-row request to a scikit-learn model goes, in-process: `serve`'s stages, then predict.

    python benchmarks/predict_overhead.py [--example random_forest] [--rows 1] [--repeat 7]

Trains examples/<example> with `train` (on a copy of its test_dir), loads it with the model
module's hooks as `serve` does, and times with timeit (the best of --repeat rounds, per call):
- serve's stages for the payload's first row(s): decode, input_fn, predict_fn, output_fn, encode;
- estimator.predict(X) as is, and inside sklearn.config_context(assume_finite=True,
  skip_parameter_validation=True) (what the default predict_fn does when X is finite);
- for a forest, its parts: the input validation alone, the trees' predict_proba called in a loop
  (the forest's work without joblib), and the trees' Cython walk alone (`tree_.predict`);
then, for a forest, profiles estimator.predict(X) with cProfile and splits its time: joblib's
dispatch of each tree (with scikit-learn's wrapper, which sets its config and warning filters per
tree), the trees' predict_proba (cProfile does not see their Cython walk inside), the input
validation (cProfile's own cost inflates
the Python parts: read its shares, not its times). Asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS.parent / "container" / "decision_trees"), str(BENCHMARKS)]

import serve_bench  # noqa: E402


def best(function: Callable[[], object], repeat: int) -> float:
    """Seconds per call: the best of `repeat` rounds of timeit's own choice of calls."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def cumulative(stats: pstats.Stats, filename: str, function: str) -> float:
    """Seconds spent in calls of `function` of a file ending in `filename`, callees included."""
    return sum(
        entry[3]
        for (path, _, name), entry in stats.stats.items()
        if path.endswith(filename) and name == function
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="random_forest")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (payload rows)")
    parser.add_argument("--repeat", type=int, default=7)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="predict-overhead-") as temporary:
        base = Path(temporary) / arguments.example
        if not serve_bench.train_example(arguments.example, base):
            sys.exit(1)
        predictor = serve_bench.EXAMPLES / arguments.example / "predictor.py"
        os.environ["BYOC_PREDICTOR"] = str(predictor)
        os.environ["SAGEMAKER_BASE_DIR"] = str(base)
        import numpy as np
        import sklearn

        from byoc import defaults, formats, hooks

        model_hooks = hooks.load(predictor)
        model = model_hooks.model_fn(base / "model")
    estimator = model.estimator
    payload = (serve_bench.EXAMPLES / arguments.example / "payload.csv").read_text().splitlines()
    lines = [payload[i % len(payload)] for i in range(arguments.rows)]
    body = ("\n".join(lines) + "\n").encode()
    asked = defaults.Request(accept=formats.CSV)
    rows = formats.decode(body, formats.CSV, model.columns)
    x = model_hooks.input_fn(rows, model)
    prediction = model_hooks.predict_fn(x, model, asked)
    records = model_hooks.output_fn(prediction, model, asked)
    quiet = {"assume_finite": True, "skip_parameter_validation": True}

    def quietly(function: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            with sklearn.config_context(**quiet):
                return function()

        return call

    timings: list[tuple[str, float]] = [
        ("serve: decode", best(lambda: formats.decode(body, formats.CSV, model.columns), 5)),
        ("serve: input_fn", best(lambda: model_hooks.input_fn(rows, model), 5)),
        ("serve: predict_fn", best(lambda: model_hooks.predict_fn(x, model, asked), 5)),
        ("serve: output_fn", best(lambda: model_hooks.output_fn(prediction, model, asked), 5)),
        ("serve: encode", best(lambda: formats.encode(records, formats.CSV, False), 5)),
    ]
    timings.append(("serve: all five", sum(t for _, t in timings)))
    plain = best(lambda: estimator.predict(x), arguments.repeat)
    checked_off = best(quietly(lambda: estimator.predict(x)), arguments.repeat)
    timings += [
        ("estimator.predict(X)", plain),
        ("  in config_context(assume_finite, skip_parameter_validation)", checked_off),
    ]
    trees = getattr(estimator, "estimators_", None)
    if trees is not None and hasattr(estimator, "_validate_X_predict"):
        x32 = np.asarray(x, dtype=np.float32)

        def loop() -> object:
            total = trees[0].predict_proba(x32, check_input=False)
            for tree in trees[1:]:
                total += tree.predict_proba(x32, check_input=False)
            return total

        timings += [
            ("  its input validation alone", best(lambda: estimator._validate_X_predict(x), 5)),
            (
                "    in config_context(...)",
                best(quietly(lambda: estimator._validate_X_predict(x)), 5),
            ),
            (f"  its {len(trees)} trees' predict_proba in a loop (no joblib)", best(loop, 5)),
            (
                f"  its {len(trees)} trees' Cython walk alone (tree_.predict)",
                best(lambda: [tree.tree_.predict(x32) for tree in trees], 5),
            ),
        ]

    print(
        f"{arguments.example}: {type(estimator).__name__}, {arguments.rows} row(s), "
        f"scikit-learn {sklearn.__version__}; best of {arguments.repeat} timeit rounds\n"
    )
    print(f"| {'step':<62} | {'µs per call':>11} |\n|{'-' * 64}|{'-' * 13}|")
    for name, seconds in timings:
        print(f"| {name:<62} | {seconds * 1e6:>11,.1f} |")

    if trees is None:
        return
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(100):
        estimator.predict(x)
    profile.disable()
    stats = pstats.Stats(profile)
    total = cumulative(stats, "sklearn/ensemble/_forest.py", "predict")
    dispatch = cumulative(stats, "joblib/parallel.py", "__call__")
    trees_python = cumulative(stats, "sklearn/ensemble/_forest.py", "_accumulate_prediction")
    validation = cumulative(stats, "sklearn/ensemble/_forest.py", "_validate_X_predict")
    parts = [
        ("joblib + sklearn.utils.parallel, per tree", dispatch - trees_python),
        ("the trees' predict_proba (their walk included)", trees_python),
        ("the forest's input validation", validation),
        ("the rest of predict", total - dispatch - validation),
    ]
    print(
        "\ncProfile of estimator.predict(X) (100 calls; cProfile's own cost inflates the Python "
        "parts):\n"
    )
    print(f"| {'part':<47} | {'share':>6} |\n|{'-' * 49}|{'-' * 8}|")
    for name, seconds in parts:
        print(f"| {name:<47} | {seconds / total:>6.0%} |")


if __name__ == "__main__":
    main()
