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


def test_gevents_wsgi_handler_reports_a_refused_request_through_log_error() -> None:
    # byoc/logs.py replaces WSGIHandler.log_error, whose messages quote the request.
    from gevent import pywsgi

    reported: list[tuple[object, ...]] = []

    class Handler(pywsgi.WSGIHandler):
        client_address = ("127.0.0.1", 1)

        def log_error(self, msg: str, *args: object) -> None:
            reported.append((msg, *args))

    handler = Handler.__new__(Handler)
    status, _ = handler._handle_client_error(pywsgi._InvalidClientRequest("bad line"))
    assert status == "400"
    assert len(reported) == 1


def test_gevents_hub_prints_a_caught_error_through_print_exception() -> None:
    # byoc/logs.py replaces Hub.print_exception, which prints messages and reprs of arguments.
    from gevent.hub import Hub

    printed = []

    class Quiet(Hub):
        def print_exception(self, context: object, *exc_info: object) -> None:
            printed.append(context)

    hub = Quiet.__new__(Quiet)
    hub.handle_error("a context", ValueError, ValueError("x"), None)
    assert printed == ["a context"]


def test_gunicorn_lets_a_hook_give_a_worker_a_socket_of_its_own() -> None:
    # gunicorn.conf.py: pre_fork reads the arbiter's WORKERS to pick a free slot, and post_fork
    # appends a UnixSocket to worker.sockets, which the gevent worker serves when it runs.
    import inspect

    from gunicorn.arbiter import Arbiter
    from gunicorn.sock import UnixSocket
    from gunicorn.workers.base import Worker
    from gunicorn.workers.ggevent import GeventWorker

    assert isinstance(Arbiter.WORKERS, dict)
    assert list(inspect.signature(UnixSocket).parameters)[:3] == ["addr", "conf", "log"]
    assert "sockets" in inspect.signature(Worker).parameters
    assert "self.sockets" in inspect.getsource(GeventWorker.run)
