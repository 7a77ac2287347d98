"""The model directory: the model's own files, written by a hook, and metadata.json beside them.

`train` has the save hook write the model's files into a staging folder, adds metadata.json (what
serving needs to know: the features, the classes, which files and their digests), then moves
everything into place, metadata last. A job stopped half-way never leaves something that looks
like a model, and `serve` refuses files that do not match their digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"
STAGING_PREFIX = ".staging-"


class ModelError(Exception):
    """The model directory holds no usable model."""


def save(model_dir: Path, write: Callable[[Path], None], metadata: dict[str, Any]) -> None:
    """`write(staging)` puts the model's files in a staging folder; then they move into place."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))
    try:
        write(staging)
        files = sorted(p.name for p in staging.iterdir() if p.is_file())
        if not files:
            raise RuntimeError("the save_model hook wrote no file")
        metadata = {**metadata, "files": {name: _digest(staging / name) for name in files}}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        # Until the new metadata is in place, no metadata means no model (see discard_partial).
        (model_dir / METADATA_FILE).unlink(missing_ok=True)
        for name in [*files, METADATA_FILE]:
            with open(staging / name, "rb") as f:
                os.fsync(f.fileno())
            (staging / name).replace(model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard_partial(model_dir: Path) -> None:
    """Remove what a save killed half-way leaves: staging folders (the files move last)."""
    for staging in model_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """metadata.json; ModelError when there is no model or it is not readable."""
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise ModelError(f"no model: {path} does not exist (train a model first)")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path}: {e}") from e
    if not isinstance(metadata, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return metadata


def model_file(model_dir: Path, metadata: dict[str, Any], name: str) -> Path:
    """The path of one of the model's files, checked against the digest `train` recorded."""
    path = model_dir / name
    if not path.is_file():
        raise ModelError(f"incomplete model: {path} does not exist")
    expected = metadata.get("files", {}).get(name)
    if expected is not None and _digest(path) != expected:
        raise ModelError(f"{path} is not the file train wrote (its SHA-256 differs)")
    return path


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
