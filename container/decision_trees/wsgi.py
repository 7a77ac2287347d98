"""The WSGI entry point gunicorn loads (`wsgi:app`), once, in its master before forking workers.

The model module's `model_fn` runs here, with gunicorn's preload_app, so that every worker shares
the model's memory and no request waits for it. A model that cannot be loaded stops the server.
Nothing here predicts, and the model is loaded in a thread of its own: OpenMP threads started in
the master's main thread do not survive the fork, and the workers' main threads would hang. Each
worker instead proves that it can predict (`probe`, run by gunicorn.conf.py's post_worker_init, on
the thread that answers small requests) before it takes a request.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from byoc import artifacts, defaults, formats, hooks, logs, settings
from byoc.app import create_app

resolved = settings.resolve()
logs.configure(resolved.log_level)
log = logging.getLogger("byoc")


def _stop(message: str) -> SystemExit:
    """Log why the server cannot start; raising the result stops gunicorn, and `serve` with it."""
    log.critical(message, extra={"source": "serve"})
    return SystemExit(1)


def _load() -> tuple[hooks.Hooks, object, formats.Columns]:
    try:
        model_hooks = hooks.load()
    except hooks.HookError as e:
        raise _stop(str(e)) from None
    try:
        # In a thread of its own: a library that starts OpenMP threads when it loads (LightGBM)
        # ties them to the thread that loaded it, and a forked worker's main thread, which has no
        # such threads, would wait for them forever.
        with ThreadPoolExecutor(1, thread_name_prefix="model_fn") as loader:
            model = loader.submit(model_hooks.model_fn, resolved.model_dir).result()
        columns = defaults.columns_of(model, resolved.model_dir)
    except artifacts.ModelError as e:
        raise _stop(str(e)) from None
    except Exception as e:
        raise _stop(f"model_fn of {model_hooks.path} failed: {type(e).__name__}: {e}") from None
    # pyarrow sets up ~6 MB at its first CSV read: here, before the fork, the workers share it
    # instead of each building its own copy on its first big request. It starts no threads.
    if not columns.strings:
        row = ",".join(["0"] * columns.width) + "\n"
        formats.decode(
            row.encode() * (formats.PYARROW_MIN_BYTES // len(row) + 1), formats.CSV, columns
        )
    return model_hooks, model, columns


def probe() -> None:
    """Predict one row (zeros, text columns missing) through every hook, as a request would.

    RuntimeError names the hook that failed. A multi-model server has no model yet.
    """
    if columns is None:
        return
    cells: list[object] = [None if i in columns.strings else 0.0 for i in range(columns.width)]
    rows = np.array([cells], dtype=object if columns.strings else np.float64)
    asked = defaults.Request(accept=formats.JSON, outputs=resolved.inference_output)
    stage = "input_fn"
    try:
        data = model_hooks.input_fn(rows, model)
        stage = "predict_fn"
        prediction = model_hooks.predict_fn(data, model, asked)
        stage = "output_fn"
        formats.encode(model_hooks.output_fn(prediction, model, asked), formats.JSON, batch=False)
    except Exception as e:
        where = model_hooks.path if stage in model_hooks.overridden else "byoc/defaults.py"
        raise RuntimeError(f"{stage} ({where}) failed: {type(e).__name__}: {e}") from e


def _import_libraries(model_hooks: hooks.Hooks) -> None:
    """Import the model module's libraries (scikit-learn and the like) by building its estimator:
    here, before the fork, the workers share them, instead of each importing its own copy when it
    first loads a model. In a thread, as model_fn is in _load. A failure is left to the loads."""
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="estimator") as builder:
            builder.submit(model_hooks.build_estimator, {}).result()
    except Exception as e:
        log.warning(
            "the model module's estimator could not be built in advance: %s", type(e).__name__
        )


if resolved.multi_model:
    # Models come and go through the MME API (byoc/multimodel.py); only the hooks load now.
    try:
        model_hooks, model, columns = hooks.load(), None, None
    except hooks.HookError as e:
        raise _stop(str(e)) from None
    _import_libraries(model_hooks)
else:
    model_hooks, model, columns = _load()
try:
    app = create_app(model_hooks, model, columns, resolved)
except ValueError as e:
    raise _stop(str(e)) from None
