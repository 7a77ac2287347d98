"""Fixtures of the unit tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from model_modules import ModuleFiles, files


@pytest.fixture
def model_module(tmp_path: Path) -> Iterator[ModuleFiles]:
    """Writes a model module's source to a file of its own and returns its path; every module
    loaded during the test is forgotten afterwards."""
    yield from files(tmp_path / "modules")
