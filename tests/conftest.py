"""Shared fixtures. A test needing a tool skips without it on a laptop, but fails under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The tool's path; skip (or, in CI, fail) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(f"{message}: CI must have every tool", pytrace=False)
        pytest.skip(message)
    return path
