"""The serving logs: one JSON object per line, each line at most MAX_LINE_BYTES.

Every part of `serve` writes this format: `serve` itself, gunicorn, the app and gevent through
JsonFormatter or `write`; nginx its access log by itself (nginx.conf); and `serve` wraps whatever
else its children write (nginx's error log, a model's prints, a library's warnings) with `pump`.

Each line has `time` (ISO 8601, UTC), `level`, `source` and `message`, then what the record adds:
`request_id`, `status`, `error` (an exception's class), `hook`, `traceback` (file:line:function of
each frame), ... An exception is logged by its class and frames, never by its message, its
arguments or local variables: they quote the values that it failed on, and no request's data may
reach a log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

MAX_LINE_BYTES = 4096
"""Including the newline. A write of up to PIPE_BUF (4096 bytes on Linux) to a pipe is atomic, so
the lines of gunicorn's processes, which share one pipe, never interleave. (Docker splits lines
over 16 KiB; CloudWatch Logs cuts events at 256 KiB.)"""
MAX_FRAMES = 30
"""A traceback keeps its innermost frames: where it failed."""
MAX_SOURCE = 64
"""A logger's name is the source of its lines: cut, so that every line has room for a message."""
DRAIN_SECONDS = 1.0
"""How long `drain` waits for the children's last lines: copying them takes milliseconds, and a
process that outlives its parent (an nginx worker whose master was killed) keeps its pipe open."""

_FIRST = ("time", "level", "source", "message")
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SOURCES = {"byoc": "app", "gunicorn": "gunicorn"}
_pumps: list[threading.Thread] = []


def frames(tb: types.TracebackType | None) -> list[str]:
    """`file:line:function` of each frame of a traceback, innermost last (at most MAX_FRAMES)."""
    found = [
        f"{frame.f_code.co_filename}:{line}:{frame.f_code.co_name}" for frame, line in _walk(tb)
    ]
    return found[-MAX_FRAMES:]


def _walk(tb: types.TracebackType | None) -> list[tuple[types.FrameType, int]]:
    walked = []
    while tb is not None:
        walked.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return walked


def line(fields: dict[str, Any]) -> str:
    """`fields` as one line of JSON (no newline) of at most MAX_LINE_BYTES - 1 bytes.

    A line that would be longer is marked `"truncated": true`, and its longest fields are cut
    (a string's end, a list's first items) until it fits; time, level and source are kept.
    """
    # ASCII only (json's default): a character is a byte, so cutting n characters saves n bytes.
    text = json.dumps(fields, default=str)
    if len(text) < MAX_LINE_BYTES:
        return text
    fields = {**fields, "truncated": True}
    while (excess := len(text) - MAX_LINE_BYTES + 1) > 0:
        cuttable = [k for k in fields if k not in _FIRST[:3] and k != "truncated"]
        if not cuttable:
            break
        size, key = max((len(json.dumps(fields[k], default=str)), k) for k in cuttable)
        value = fields[key]
        # Escapes make a character up to 12 bytes: keep the share of characters that fits.
        keep = len(value) * (size - excess) // size - 3 if isinstance(value, str) else 0
        if isinstance(value, list) and len(value) > 1:
            fields[key] = value[1:]
        elif keep > 0:
            fields[key] = value[:keep] + "..."
        elif isinstance(value, dict | list) and len(value) > 1:
            fields[key] = json.dumps(value, default=str)
        else:
            del fields[key]
        text = json.dumps(fields, default=str)
    return text


def _now(created: float | None = None) -> str:
    moment = time.time() if created is None else created
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def write(message: str, level: str = "INFO", source: str = "serve", fd: int = 2, **extra: Any):
    """Write one line to `fd` in a single system call, without logging's locks (safe in any
    thread: the worker's watchdog, gevent's hub)."""
    fields = {"time": _now(), "level": level, "source": source, "message": message}
    fields.update(pid=os.getpid(), **extra)
    os.write(fd, (line(fields) + "\n").encode())


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: the fields above, the record's `extra` ones, the pid."""

    def format(self, record: logging.LogRecord) -> str:
        top = record.name.split(".", 1)[0]
        fields: dict[str, Any] = {
            "time": _now(record.created),
            "level": record.levelname,
            "source": _SOURCES.get(top, top)[:MAX_SOURCE],
            "message": record.getMessage(),
        }
        fields.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        if record.exc_info and record.exc_info[0] is not None:
            fields.setdefault("error", record.exc_info[0].__name__)
            fields.setdefault("traceback", frames(record.exc_info[2]))
        fields["pid"] = record.process
        return line(fields)


def configure(level: int) -> None:
    """JsonFormatter on stderr for the root logger, unless it has a handler already (gunicorn's
    logconfig_dict gives it the same one); uncaught exceptions logged the same way."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    route_uncaught()


def route_uncaught() -> None:
    """Log an uncaught exception (of the program, of a thread, or one ignored in a finalizer) by
    its class and frames: Python would print its message, and the repr of the object involved."""
    sys.excepthook = _uncaught
    threading.excepthook = lambda hook: _uncaught(hook.exc_type, hook.exc_value, hook.exc_traceback)
    sys.unraisablehook = lambda hook: _uncaught(
        hook.exc_type, hook.exc_value, hook.exc_traceback, "Exception ignored"
    )


def _uncaught(kind: type, value: object, tb: Any, what: str = "Uncaught exception") -> None:
    name = getattr(kind, "__name__", "exception")
    write(f"{what}: {name}", level="ERROR", source="python", error=name, traceback=frames(tb))


def logging_config(level: int) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: every logger, gunicorn's included, through JsonFormatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # nginx writes the access log (nginx.conf).
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def route_gevent_errors() -> None:
    """Log what gevent would print itself as lines of this format, without messages or reprs.

    gevent's hub prints an error that it catches (a failing greenlet, a threadpool call) with its
    message and the repr of its context, which is a request's environ or a call and its
    arguments: the request's body. Its WSGI server writes a request that it refuses, quoted.
    """
    from gevent import pywsgi
    from gevent.hub import Hub

    Hub.print_exception = _print_exception
    pywsgi.WSGIHandler.log_error = _log_refused_request


def _print_exception(hub: object, context: object, kind: type, value: object, tb: Any) -> None:
    write(
        f"gevent caught {getattr(kind, '__name__', 'an error')} in {type(context).__name__}",
        level="ERROR",
        source="gevent",
        error=getattr(kind, "__name__", str(type(kind))),
        traceback=frames(tb),
    )


def _log_refused_request(handler: object, message: str, *args: object) -> None:
    write("gevent's WSGI server refused an invalid request", level="WARNING", source="gevent")


_NGINX = re.compile(
    r"(?:nginx: )?(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?\[(?P<level>[a-z]+)\] "
    r"(?:\d+#\d+: )?(?:\*\d+ )?(?P<message>.*)"
)
_NGINX_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "notice": "INFO",
    "warn": "WARNING",
    "error": "ERROR",
    "crit": "CRITICAL",
    "alert": "CRITICAL",
    "emerg": "CRITICAL",
}
_QUOTED = re.compile(r'"[^"]*"')


def wrap(raw: bytes, source: str) -> dict[str, Any]:
    """The fields of a line that a child wrote as plain text.

    nginx's error lines keep their level and message, without the context that nginx appends
    (", client: ..., request: "POST /path?query ...", host: ...") or anything it quotes (a header
    line, a file name), which can be a client's data.
    """
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    level = "INFO"
    if source == "nginx" and (parsed := _NGINX.fullmatch(text)):
        level = _NGINX_LEVELS.get(parsed["level"], "ERROR")
        text = _QUOTED.sub('"..."', parsed["message"].split(", client: ", 1)[0])
    elif source == "nginx":
        text = _QUOTED.sub('"..."', text)
    return {"time": _now(), "level": level, "source": source, "message": text}


def _copy(stream: IO[bytes], source: str, fd: int) -> None:
    passing = source != "nginx"
    complete = True
    with stream:
        for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
            continuation, complete = not complete, raw.endswith(b"\n")
            if continuation:
                continue  # the rest of a line too long to keep
            if passing and complete and _is_line(raw):
                os.write(fd, raw)
                continue
            fields = wrap(raw, source)
            if not complete and len(raw) == MAX_LINE_BYTES:
                fields["truncated"] = True
            os.write(fd, (line(fields) + "\n").encode())


def _is_line(raw: bytes) -> bool:
    """True for a line of this format (gunicorn's processes log that way)."""
    if not raw.startswith(b'{"time": '):
        return False
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def pump(stream: IO[bytes], source: str, fd: int = 2) -> threading.Thread:
    """Copy a child's output to `fd` line by line until its end, in a thread; lines of this format
    as they are, any other line wrapped (`wrap`), cut at MAX_LINE_BYTES."""
    thread = threading.Thread(target=_copy, args=(stream, source, fd), name=f"{source}-log")
    thread.daemon = True
    thread.start()
    _pumps.append(thread)
    return thread


def drain(seconds: float = DRAIN_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait for every pump to copy its child's last lines (a child that has exited)."""
    deadline = clock() + seconds
    for thread in _pumps:
        thread.join(max(0.0, deadline - clock()))
