"""The training job, step by step: configuration, data, fit, metrics, model.

`train` runs `main` in a worker process that it can stop at any moment; this module is the job
itself. The algorithm's specifics live in algorithm.py.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import algorithm
import channels
import dataset
import hosts
import hyperparameters
import model
from environment import Paths
from failure import EXIT_INPUT_ERROR, EXIT_INTERNAL_ERROR, InputError, write_failure
from hyperparameters import Hyperparameter, Null, Text

DATA_HYPERPARAMETERS = {
    "label_column": Hyperparameter(None, (Text("a column name"), Null("the first column"))),
}
"""Hyperparameters of the data rather than the algorithm (Parquet only)."""

METRICS_FILE = "metrics.json"


def log(message: str) -> None:
    """A progress line for the job's log (CloudWatch)."""
    print(message, flush=True)


def main(paths: Paths, saving: AbstractContextManager[Any] | None = None) -> int:
    """Run the job; the exit code, with the failure file written when it is not 0.

    `saving` is held while the model is written, so that a stop waits for a save in progress.
    """
    try:
        return run(paths, saving or nullcontext())
    except InputError as e:
        write_failure(paths.failure, str(e))
        return EXIT_INPUT_ERROR
    except Exception as e:
        write_failure(
            paths.failure,
            f"Training failed on an internal error: {type(e).__name__}: {e}",
            traceback.format_exc(),
        )
        return EXIT_INTERNAL_ERROR


def run(paths: Paths, saving: AbstractContextManager[Any]) -> int:
    """The job's steps; InputError when something in its input is wrong."""
    cluster = hosts.read(paths)
    log(f"host {cluster.current_host} of {len(cluster.hosts)}")
    spec = {**DATA_HYPERPARAMETERS, **algorithm.HYPERPARAMETERS}
    params = hyperparameters.resolve(hyperparameters.read(paths.hyperparameters), spec)
    label_column = params.pop("label_column")
    log(f"hyperparameters: {json.dumps(params)}")

    found = channels.read(paths)
    training, validation = channels.training_and_validation(found)
    used = [c for c in (training, validation) if c is not None]
    log("channels: " + ", ".join(f"{c.name} ({c.input_mode} mode)" for c in used))
    ignored = sorted(set(found) - {c.name for c in used})
    if ignored:
        log(f"ignoring channels: {', '.join(ignored)}")
    if len(cluster.hosts) > 1:
        sharded = [c.name for c in (training, validation) if c is not None and c.sharded]
        if sharded:
            raise InputError(
                f"A decision tree cannot be trained on shards: set S3DistributionType to "
                f"FullyReplicated for channel {', '.join(sharded)} (or use one instance)."
            )
        if not cluster.is_leader:
            log(
                f"{cluster.current_host}: {cluster.leader} trains the model (a single tree "
                f"cannot be split between {len(cluster.hosts)} hosts); nothing to do here"
            )
            return 0

    train_data = dataset.read(training, label_column, log)
    validation_data = dataset.read(validation, label_column, log) if validation else None
    if validation_data and validation_data.feature_names != train_data.feature_names:
        raise InputError(
            f"The validation data has {len(validation_data.feature_names)} features but the "
            f"training data has {len(train_data.feature_names)}: they need the same columns."
        )

    log(
        f"fitting {algorithm.NAME} on {train_data.rows:,} rows x "
        f"{len(train_data.feature_names)} features"
    )
    started = time.monotonic()
    estimator = algorithm.fit(train_data.features, train_data.labels, params)
    log(f"fitted in {time.monotonic() - started:.2f} s: {algorithm.describe(estimator)}")

    metrics = _metrics(estimator, {"train": train_data, "validation": validation_data})
    for name, value in metrics.items():
        log(f"{name}={value:.4f}")
    _write_json(paths.output_data / METRICS_FILE, metrics)

    metadata = {
        "algorithm": algorithm.NAME,
        "n_features": len(train_data.feature_names),
        "feature_names": train_data.feature_names,
        "classes": estimator.classes_.tolist(),
        "label_column": train_data.label_column,
        "hyperparameters": params,
        "training_rows": train_data.rows,
    }
    with saving:
        model.save(estimator, paths.model, metadata)
    log(f"model saved in {paths.model}")
    return 0


def _metrics(estimator: Any, data: dict[str, dataset.Dataset | None]) -> dict[str, float]:
    """Every metric of every data set, named as the log prints them: `validation:accuracy`."""
    return {
        f"{name}:{metric}": value
        for name, rows in data.items()
        if rows is not None
        for metric, value in algorithm.evaluate(estimator, rows.features, rows.labels).items()
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, indent=2)
        f.write("\n")
    Path(temporary).replace(path)
