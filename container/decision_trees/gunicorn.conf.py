"""gunicorn's settings, all derived from settings.py (`gunicorn --print-config` shows them)."""

import _thread
import gc
import itertools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from byoc import logs, settings

resolved = settings.resolve()

wsgi_app = "wsgi:app"
bind = [f"unix:{resolved.socket}"]
workers = resolved.workers
# Measured: gevent answers /ping within milliseconds while big requests run in its threadpool
# (app.py); gthread workers with the same load made /ping wait ~200 ms at the 99th percentile.
# gevent's own HTTP server (pywsgi) spends ~10% less CPU on a small request than gunicorn's
# pure-Python parser in the plain gevent worker, and reads a body in one call, not in 8 KiB pieces.
worker_class = "gevent_pywsgi"
worker_connections = 1000
timeout = resolved.timeout
# SageMaker sends SIGKILL 30 s after SIGTERM: in-flight requests get most of that to finish.
graceful_timeout = min(resolved.timeout, 25)
# Longer than nginx's upstream keepalive_timeout, so that nginx always closes an idle connection
# first and never sends a request on one gunicorn is closing.
keepalive = 75
preload_app = True
control_socket_disable = True
# Each worker's heartbeat file: in memory, or in serve's folder where /dev/shm is missing or not
# writable (a read-only container as an unprivileged user, as serverless endpoints may run it).
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else str(resolved.runtime_dir)
# nginx writes the access log (nginx.conf); everything else is a JSON line on stderr (byoc/logs.py).
accesslog = None
errorlog = "-"
loglevel = logging.getLevelName(resolved.log_level).lower()
logconfig_dict = logs.logging_config(resolved.log_level)
proc_name = "decision-trees"
BOOT_ERROR = 3
"""The exit status by which a worker tells gunicorn's master that it cannot boot."""


def when_ready(server: object) -> None:
    """Freeze the preloaded heap, so that the garbage collector of a forked worker never writes to
    its pages, which stay shared with the master and the other workers."""
    gc.freeze()


def pre_fork(server: Any, worker: Any) -> None:
    """Give the worker about to start the lowest slot that no running worker holds: a replaced
    worker's successor takes over its socket (settings.worker_sockets)."""
    taken = {getattr(other, "slot", None) for other in server.WORKERS.values()}
    worker.slot = next(slot for slot in itertools.count() if slot not in taken)


def post_fork(server: Any, worker: Any) -> None:
    """Listen on the worker's own socket besides the shared one: nginx sends each big request to
    the worker with the fewest in flight (nginx.conf). A worker beyond the configured count
    (gunicorn's TTIN) has only the shared socket."""
    if worker.slot < len(resolved.worker_sockets):
        from gunicorn.sock import UnixSocket

        # UnixSocket removes a socket a dead worker left and binds with gunicorn's umask, as the
        # shared socket is: nginx's unprivileged workers must be able to connect.
        own = UnixSocket(str(resolved.worker_sockets[worker.slot]), server.cfg, server.log)
        worker.sockets = [*worker.sockets, own]


def worker_exit(server: object, worker: object) -> None:
    """Forget logging's weak references to its handlers before the worker's interpreter shuts down.

    Otherwise each reference's callback runs during teardown, after gevent's patched lock has lost
    its globals, and every stopping worker prints a TypeError (gevent issue #2148). The handlers
    write to stderr, which needs no flushing.
    """
    logging._handlerList.clear()


def post_worker_init(worker: object) -> None:
    """Make the worker predict once (wsgi.probe) before it takes a request.

    The probe runs on the worker's main thread, where small requests run. A hook that fails stops
    the server (gunicorn halts when a worker cannot boot), naming the hook. A probe that does not
    return within the request timeout (a library deadlocked by the fork) makes the worker exit, and
    gunicorn replaces it: /ping is never answered by a worker that cannot predict.
    """
    import wsgi

    logs.route_gevent_errors()
    start_thread, allocate_lock = _os_threads()
    finished = allocate_lock()
    finished.acquire()
    start_thread(_watch, (finished,))
    try:
        wsgi.probe()
    except Exception as e:
        logs.write(f"the model cannot predict: {e}", level="CRITICAL", source="gunicorn")
        # gunicorn's "worker failed to boot": the master stops, and so does serve.
        sys.exit(BOOT_ERROR)
    finally:
        finished.release()


def _os_threads() -> tuple[Callable[..., object], Callable[[], Any]]:
    """A real thread and lock, as before gevent patched them: a deadlock on the main thread would
    stop gevent's loop, and every greenlet with it."""
    try:
        from gevent.monkey import get_original
    except ImportError:
        return _thread.start_new_thread, _thread.allocate_lock
    start_thread, allocate_lock = get_original("_thread", ["start_new_thread", "allocate_lock"])
    return start_thread, allocate_lock


def _watch(finished: Any) -> None:
    if finished.acquire(timeout=resolved.timeout):
        return
    logs.write(
        f"worker {os.getpid()} could not predict within {resolved.timeout} s "
        "(a library may have deadlocked after the fork); replacing it",
        level="ERROR",
        source="gunicorn",
    )
    os._exit(1)
