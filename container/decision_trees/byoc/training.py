"""The training job, step by step: configuration, data, fit, metrics, model.

`train` runs `main` in a worker process that it can stop at any moment; this module is the job
itself. The model's specifics are the hooks of the model module (predictor.py, see hooks.py).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from byoc import artifacts, channels, dataset, defaults, hooks, hosts, hyperparameters
from byoc.environment import Paths
from byoc.errors import InputError
from byoc.failure import EXIT_INPUT_ERROR, EXIT_INTERNAL_ERROR, write_failure

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
    except hooks.HookError as e:
        write_failure(
            paths.failure, f"The model module cannot be used: {e}", traceback.format_exc()
        )
        return EXIT_INTERNAL_ERROR
    except defaults.ModelCodeError as e:
        write_failure(paths.failure, str(e), traceback.format_exc())
        return EXIT_INTERNAL_ERROR
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
    model = hooks.load()
    log(f"model module: {model.path} (own hooks: {', '.join(model.overridden) or 'none'})")
    data_params, received = hyperparameters.split(hyperparameters.read(paths.hyperparameters))
    label_column = data_params.get("label_column")
    estimator = model.build_estimator(received)
    log(f"estimator: {estimator!r}")

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
                f"This model is trained on one host from all the data: set S3DistributionType "
                f"to FullyReplicated for channel {', '.join(sharded)} (or use one instance)."
            )
        if not cluster.is_leader:
            log(
                f"{cluster.current_host}: {cluster.leader} trains the model on all the data; "
                "this host waits until it has finished"
            )
            return 0

    train_data = dataset.read(training, label_column, log)
    validation_data = None
    if validation:
        # The training data decides which columns hold text (a validation column may look numeric).
        validation_data = dataset.read(
            validation, label_column, log, string_columns=train_data.string_columns
        )
    if validation_data and (
        validation_data.feature_names != train_data.feature_names
        or validation_data.string_columns != train_data.string_columns
    ):
        raise InputError(
            f"The validation data's features ({_columns(validation_data)}) differ from the "
            f"training data's ({_columns(train_data)}): they need the same columns."
        )

    log(
        f"fitting {type(estimator).__name__} on {train_data.rows:,} rows x "
        f"{len(train_data.feature_names)} features"
    )
    started = time.monotonic()
    fitted = model.fit(estimator, train_data.features, train_data.labels)
    log(f"fitted in {time.monotonic() - started:.2f} s: {model.describe(fitted)}")

    metrics = _metrics(model, fitted, {"train": train_data, "validation": validation_data})
    for name, value in metrics.items():
        log(f"{name}={value:.4f}")
    _write_json(paths.output_data / METRICS_FILE, metrics)

    metadata = {
        **_versions(),
        **defaults.metadata(fitted),
        "n_features": len(train_data.feature_names),
        "feature_names": train_data.feature_names,
        "string_columns": train_data.string_columns,
        "label_column": train_data.label_column,
        "hyperparameters": _plain(estimator.get_params(deep=True)),
        "training_rows": train_data.rows,
    }
    with saving:
        artifacts.save(paths.model, lambda staging: model.save_model(fitted, staging), metadata)
    log(f"model saved in {paths.model}")
    return 0


def metric_definitions(hooks_: hooks.Hooks) -> list[dict[str, str]]:
    """SageMaker MetricDefinitions matching the metric lines `run` logs, validation first."""
    names = hooks_.metric_names(hooks_.build_estimator({}))
    return [
        {"Name": f"{channel}:{name}", "Regex": f"{channel}:{name}=(-?[0-9.]+)"}
        for channel in ("validation", "train")
        for name in names
    ]


def _columns(data: dataset.Dataset) -> str:
    strings = set(data.string_columns)
    kinds = [f"{n} (text)" if i in strings else n for i, n in enumerate(data.feature_names)]
    return (
        ", ".join(kinds) if len(kinds) <= 6 else f"{', '.join(kinds[:5])}, ... {len(kinds)} in all"
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that strict JSON can hold (not a Pipeline's steps, not NaN)."""
    plain = {}
    for name, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        plain[name] = value
    return plain


def _versions() -> dict[str, str]:
    """The versions of the libraries that made the model, for whoever serves it."""
    loaded = [sys.modules.get(name) for name in ("lightgbm", "numpy", "sklearn", "xgboost")]
    return {m.__name__: m.__version__ for m in loaded if hasattr(m, "__version__")}


def _metrics(
    model: hooks.Hooks, estimator: Any, data: dict[str, dataset.Dataset | None]
) -> dict[str, float]:
    """Every metric of every data set, named as the log prints them: `validation:accuracy`."""
    return {
        f"{name}:{metric}": float(value)
        for name, rows in data.items()
        if rows is not None
        for metric, value in model.evaluate(estimator, rows.features, rows.labels).items()
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, indent=2)
        f.write("\n")
    Path(temporary).replace(path)
