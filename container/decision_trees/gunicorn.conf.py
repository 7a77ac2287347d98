"""gunicorn's settings, all derived from settings.py (`gunicorn --print-config` shows them)."""

import gc
import logging
from pathlib import Path

import settings

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
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
accesslog = None
errorlog = "-"
loglevel = logging.getLevelName(resolved.log_level).lower()
proc_name = "decision-trees"


def when_ready(server: object) -> None:
    """Freeze the preloaded heap, so that the garbage collector of a forked worker never writes to
    its pages, which stay shared with the master and the other workers."""
    gc.freeze()


def worker_exit(server: object, worker: object) -> None:
    """Forget logging's weak references to its handlers before the worker's interpreter shuts down.

    Otherwise each reference's callback runs during teardown, after gevent's patched lock has lost
    its globals, and every stopping worker prints a TypeError (gevent issue #2148). The handlers
    write to stderr, which needs no flushing.
    """
    logging._handlerList.clear()
