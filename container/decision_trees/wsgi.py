"""The WSGI entry point gunicorn loads (`wsgi:app`), once, in its master before forking workers.

Loading the model here, with gunicorn's preload_app, means every worker shares its memory and no
request ever waits for it. A model that cannot be loaded or cannot predict stops the server.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

import formats
import predictor
import settings
from app import create_app
from model import ModelError

resolved = settings.resolve()
logging.basicConfig(
    level=resolved.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
)


def _load() -> predictor.Model:
    try:
        loaded = predictor.load_model(resolved.model_dir)
        probe = np.zeros((1, loaded.n_features))
        predictor.to_records(loaded, predictor.predict(loaded, predictor.to_matrix(loaded, probe)))
        # pyarrow sets up ~6 MB at its first CSV read: here, before the fork, the workers share
        # it instead of each building its own copy on its first big request.
        row = ",".join(["0"] * loaded.n_features) + "\n"
        big_body = row.encode() * (formats.PYARROW_MIN_BYTES // len(row) + 1)
        formats.decode(big_body, formats.CSV, loaded.n_features)
    except ModelError as e:
        raise SystemExit(f"serve: {e}") from None
    except Exception as e:
        message = f"the model loads but cannot predict: {type(e).__name__}: {e}"
        raise SystemExit(f"serve: {message}") from None
    return loaded


try:
    app = create_app(_load(), resolved)
except ValueError as e:
    raise SystemExit(f"serve: {e}") from None
