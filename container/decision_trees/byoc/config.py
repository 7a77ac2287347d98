"""The platform's JSON configuration files (hyperparameters, channels, resources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from byoc.errors import InputError


def read_json_object(path: Path, holds: str = "a JSON object") -> dict[str, Any]:
    """A configuration file that must hold a JSON object; InputError naming the file otherwise."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"{path} is not valid JSON: {e}.") from e
    if not isinstance(content, dict):
        raise InputError(f"{path} must hold {holds}.")
    return content
