"""The model's files: a scikit-learn estimator in skops format plus a metadata.json beside it.

skops loads only the types it is told to trust, so a model file cannot run code when it is
loaded, unlike a pickle. `train` writes these files, `serve` reads them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"

STAGING_PREFIX = ".staging-"

T = TypeVar("T")

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
"""The only type beyond skops' defaults that a fitted decision tree needs."""


class ModelError(Exception):
    """The model directory holds no usable model."""


def save(estimator: Any, model_dir: Path, metadata: dict[str, Any]) -> None:
    """Write the model completely in a staging folder, then move its files into `model_dir`.

    The metadata moves last and `load` requires it, so a job stopped half-way never leaves
    something that looks like a model.
    """
    import sklearn  # imported here, not at the top: serving reads these files without it
    import skops.io

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))
    try:
        skops.io.dump(estimator, staging / MODEL_FILE)
        metadata = {"sklearn_version": sklearn.__version__, **metadata}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        # Until the new metadata is in place, no metadata means no model (see discard_partial).
        (model_dir / METADATA_FILE).unlink(missing_ok=True)
        for name in (MODEL_FILE, METADATA_FILE):
            with open(staging / name, "rb") as f:
                os.fsync(f.fileno())
            (staging / name).replace(model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard_partial(model_dir: Path) -> None:
    """Remove what a save killed half-way leaves: staging folders, a model file without metadata."""
    for staging in model_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
    if not (model_dir / METADATA_FILE).exists():
        (model_dir / MODEL_FILE).unlink(missing_ok=True)


def load(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Load the estimator and its metadata; ModelError says what is missing or wrong."""
    import skops.io

    return load_with(model_dir, lambda path: skops.io.load(path, trusted=TRUSTED_TYPES))


def load_with(model_dir: Path, read: Callable[[Path], T]) -> tuple[T, dict[str, Any]]:
    """`read(model file)` and the metadata; ModelError says what is missing or wrong.

    Serving reads the model file its own way (tree.py); the checks around it are the same.
    """
    metadata_path = model_dir / METADATA_FILE
    model_path = model_dir / MODEL_FILE
    for path in (metadata_path, model_path):
        if not path.is_file():
            raise ModelError(f"no model: {path} does not exist (train a model first)")
    try:
        metadata = json.loads(metadata_path.read_text())
        loaded = read(model_path)
    except Exception as e:
        raise ModelError(f"cannot load the model in {model_dir}: {type(e).__name__}: {e}") from e
    return loaded, metadata
