"""Why a training job failed: the error a user can fix, the exit codes and the failure file.

SageMaker shows the first 1024 characters of output/failure as the job's FailureReason, so the
file starts with one sentence that says what to fix; details such as a traceback follow it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

FAILURE_REASON_LIMIT = 1024
"""How much of the failure file SageMaker keeps as FailureReason (counted here in UTF-8 bytes)."""

EXIT_INTERNAL_ERROR = 1
"""A bug or a broken environment: the failure file holds the traceback."""

EXIT_INPUT_ERROR = 2
"""The job's input (hyperparameters, channels, data) is wrong: the failure file says what to fix."""


def stopped_exit_code(signum: int) -> int:
    """The exit status of a job stopped by a signal, as shells report it (143 for SIGTERM)."""
    return 128 + signum


def reason_line(reason: str) -> str:
    """The reason on one line, cut between UTF-8 characters to fit the FailureReason limit."""
    line = " ".join(reason.split())
    encoded = line.encode()
    if len(encoded) <= FAILURE_REASON_LIMIT:
        return line
    ellipsis = "..."
    kept = encoded[: FAILURE_REASON_LIMIT - len(ellipsis)].decode(errors="ignore")
    return kept + ellipsis


def write_failure(path: Path, reason: str, details: str = "") -> bool:
    """Write the failure file unless one exists (the first reason wins); False when it existed.

    The reason also goes to stderr. The file appears complete or not at all: it is written under
    a temporary name and then hard-linked into place, which fails if the name is taken.
    """
    first_line = reason_line(reason)
    print(f"error: {reason}", file=sys.stderr)
    if first_line != " ".join(reason.split()):
        details = f"{reason}\n\n{details}".rstrip()
    text = f"{first_line}\n\n{details}\n" if details else f"{first_line}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".failure-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.link(temporary, path)
    except FileExistsError:
        print(f"note: {path} already exists and is kept as it is", file=sys.stderr)
        return False
    finally:
        Path(temporary).unlink()
    return True
