"""The few places that rely on another library's internals: each test fails when they change.

The image and the tests install the same pinned versions (container/requirements.txt), so a
version bump that breaks one of these assumptions fails `make test` instead of the image.
"""

from __future__ import annotations

import logging
import shlex
import weakref
from pathlib import Path

import pyarrow

ROOT = Path(__file__).resolve().parents[2]


def test_logging_keeps_its_handlers_weak_references_in_a_list_the_workers_clear() -> None:
    # gunicorn.conf.py's worker_exit clears logging._handlerList (gevent issue #2148).
    assert isinstance(logging._handlerList, list)
    handler = logging.StreamHandler()
    assert any(isinstance(ref, weakref.ref) and ref() is handler for ref in logging._handlerList)
    handler.close()


def pyarrow_removals() -> list[str]:
    """The names the Dockerfile removes from pyarrow's wheel (relative to its package folder)."""
    dockerfile = (ROOT / "container" / "Dockerfile").read_text().replace("\\\n", " ")
    step = next(line for line in dockerfile.splitlines() if "site-packages/pyarrow" in line)
    names = []
    for command in step.split("&&")[1:]:
        words = shlex.split(command)
        assert words[0] == "rm", command
        names += [w for w in words[1:] if not w.startswith("-")]
    return names


def test_every_file_the_dockerfile_removes_from_pyarrow_still_exists_under_that_name() -> None:
    package = Path(pyarrow.__file__).parent
    names = pyarrow_removals()
    assert len(names) > 10
    missing = [name for name in names if not list(package.glob(name))]
    assert missing == [], f"pyarrow {pyarrow.__version__} no longer has {missing}"
