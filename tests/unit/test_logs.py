"""byoc/logs.py: JSON lines, bounded, without an error's message; plain output wrapped."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc import logs

CANARY = "5.4321987"
"""A value that must never reach the log."""


def record(
    name: str = "byoc", message: str = "hello", exc_info: Any = None, **extra: Any
) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, logging.WARNING, __file__, 1, message, (), exc_info, extra=extra
    )


def formatted(made: logging.LogRecord) -> dict[str, Any]:
    text = logs.JsonFormatter().format(made)
    assert "\n" not in text
    assert len(text.encode()) < logs.MAX_LINE_BYTES
    return json.loads(text)


def test_a_record_is_one_json_line_with_its_fields_and_extras() -> None:
    line = formatted(record(request_id="r1", status=400))

    assert list(line)[:4] == ["time", "level", "source", "message"]
    assert line["time"].endswith("+00:00")
    assert (line["level"], line["source"], line["message"]) == ("WARNING", "app", "hello")
    assert (line["request_id"], line["status"], line["pid"]) == ("r1", 400, os.getpid())


@pytest.mark.parametrize(
    ("logger", "source"),
    [
        ("byoc", "app"),
        ("byoc.app", "app"),
        ("gunicorn.error", "gunicorn"),
        ("lightgbm", "lightgbm"),
    ],
)
def test_the_source_is_the_part_that_logged(logger: str, source: str) -> None:
    assert formatted(record(logger))["source"] == source


def fail(value: str) -> None:
    raise ValueError(f"could not convert {value!r}")


def test_an_exception_is_logged_by_its_class_and_frames_never_its_message() -> None:
    try:
        fail(CANARY)
    except ValueError:
        exc_info = sys.exc_info()

    line = formatted(record(exc_info=exc_info))

    assert line["error"] == "ValueError"
    assert line["traceback"][-1].endswith(":fail")
    assert line["traceback"][-1].startswith(f"{__file__}:")
    assert CANARY not in json.dumps(line)


def test_a_traceback_keeps_its_innermost_frames() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError
        deep(n - 1)

    try:
        deep(100)
    except RuntimeError:
        exc_info = sys.exc_info()
    assert len(logs.frames(exc_info[2])) == logs.MAX_FRAMES


def test_a_long_message_is_cut_to_the_bound_keeping_the_line_json() -> None:
    line = formatted(record(message='é"\n\x00' * 100_000, request_id="r1"))

    assert line["truncated"] is True
    assert line["message"].startswith('é"\n\x00') and line["message"].endswith("...")
    assert (line["level"], line["source"], line["request_id"]) == ("WARNING", "app", "r1")


def test_a_long_traceback_loses_its_outermost_frames_first() -> None:
    frames = [f"/f{i}.py:{i}:{'x' * 200}" for i in range(logs.MAX_FRAMES)]
    line = json.loads(logs.line({"message": "m", "traceback": frames}))

    assert line["truncated"] is True
    assert line["traceback"] == frames[-len(line["traceback"]) :]


FIRST = ("time", "level", "source", "message")
"""The fields every line starts with; an extra field never replaces them."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=50,
)


@settings(derandomize=True, database=None, deadline=None)
@given(
    message=st.text(max_size=10_000),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=50).filter(lambda key: key not in FIRST),
        json_values,
        max_size=5,
    ),
)
def test_any_fields_make_one_json_line_within_the_bound(
    message: str, extra: dict[str, Any]
) -> None:
    fields = {"time": "t", "level": "INFO", "source": "app", "message": message, **extra}
    text = logs.line(fields)

    assert len(text.encode()) < logs.MAX_LINE_BYTES
    assert "\n" not in text
    parsed = json.loads(text)
    assert (parsed["time"], parsed["level"], parsed["source"]) == ("t", "INFO", "app")


def test_write_is_one_line_on_the_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with open(path, "wb") as out:
        logs.write("listening", fd=out.fileno(), port=8080)
    (line,) = path.read_text().splitlines()
    parsed = json.loads(line)
    assert (parsed["source"], parsed["message"], parsed["port"]) == ("serve", "listening", 8080)


def test_nginx_error_lines_keep_level_and_message_without_what_the_client_sent() -> None:
    raw = (
        b"2024/05/01 10:00:00 [error] 12#12: *7 client intended to send too large body: "
        b"6291457 bytes, client: 127.0.0.1, server: , request: "
        b'"POST /invocations?x=' + CANARY.encode() + b' HTTP/1.1", host: "localhost"\n'
    )
    fields = logs.wrap(raw, "nginx")
    assert fields["level"] == "ERROR"
    assert fields["message"] == "client intended to send too large body: 6291457 bytes"

    header = b'2024/05/01 10:00:00 [info] 12#12: *8 client sent invalid header line: "X: '
    fields = logs.wrap(
        header + CANARY.encode() + b'" while reading client request headers\n', "nginx"
    )
    assert fields["level"] == "INFO"
    assert CANARY not in fields["message"]
    assert fields["message"].startswith("client sent invalid header line")

    fields = logs.wrap(b'nginx: [emerg] unknown directive "x" in /etc/nginx.conf:3\n', "nginx")
    assert fields["level"] == "CRITICAL"


def pumped(tmp_path: Path, source: str, written: bytes) -> list[dict[str, Any]]:
    read_end, write_end = os.pipe()
    path = tmp_path / "out"
    with open(path, "wb") as out:
        thread = logs.pump(os.fdopen(read_end, "rb"), source, out.fileno())
        with os.fdopen(write_end, "wb") as child:
            child.write(written)
        thread.join(10)
    assert not thread.is_alive()
    lines = path.read_bytes().splitlines()
    assert all(len(line) < logs.MAX_LINE_BYTES for line in lines)
    return [json.loads(line) for line in lines]


def test_a_pump_wraps_plain_lines_and_passes_json_lines_through(tmp_path: Path) -> None:
    own = logs.line({"time": "t", "level": "ERROR", "source": "app", "message": "m"})
    written = b"".join(
        [
            b"a model's print\n",
            own.encode() + b"\n",
            b'{"time": not json\n',
            b"x" * 1_000_000 + b"\n",  # one long line, cut once
            b"\xff\xfe not utf-8\n",
            b"no newline at the end",
        ]
    )
    lines = pumped(tmp_path, "gunicorn", written)

    assert [line["message"][:15] for line in lines] == [
        "a model's print",
        "m",
        '{"time": not js',
        "x" * 15,
        "\ufffd\ufffd not utf-8",
        "no newline at t",
    ]
    assert lines[1] == json.loads(own)
    assert lines[3]["truncated"] is True
    assert {line["source"] for i, line in enumerate(lines) if i != 1} == {"gunicorn"}


def test_a_pump_never_passes_nginx_lines_through(tmp_path: Path) -> None:
    own = logs.line({"time": "t", "level": "INFO", "source": "x", "message": CANARY})
    (line,) = pumped(tmp_path, "nginx", f'{own[:-1]}, "q": "{CANARY}"}}\n'.encode())
    assert line["source"] == "nginx"
    assert CANARY not in json.dumps(line)


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> None:
    from gevent import pywsgi
    from gevent.hub import Hub

    monkeypatch.setattr(Hub, "print_exception", Hub.print_exception)
    monkeypatch.setattr(pywsgi.WSGIHandler, "log_error", pywsgi.WSGIHandler.log_error)
    logs.route_gevent_errors()


def lines_on_stderr(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capfd.readouterr().err
    assert CANARY not in err
    return [json.loads(line) for line in err.splitlines()]


def test_gevent_hub_errors_are_logged_without_message_or_context(
    routed: None, capfd: pytest.CaptureFixture[str]
) -> None:
    import gevent

    try:
        fail(CANARY)
    except ValueError:
        kind, value, tb = sys.exc_info()
    gevent.get_hub().handle_error({"QUERY_STRING": CANARY}, kind, value, tb)

    (line,) = lines_on_stderr(capfd)
    assert (line["source"], line["level"], line["error"]) == ("gevent", "ERROR", "ValueError")
    assert line["traceback"][-1].endswith(":fail")


def test_a_failing_threadpool_call_is_logged_without_its_arguments(
    routed: None, capfd: pytest.CaptureFixture[str]
) -> None:
    import gevent

    with pytest.raises(ValueError):
        gevent.get_hub().threadpool.apply(functools.partial(fail, CANARY))

    (line,) = lines_on_stderr(capfd)
    assert line["error"] == "ValueError"


def test_a_request_gevents_wsgi_server_refuses_is_logged_without_its_text(
    routed: None, capfd: pytest.CaptureFixture[str]
) -> None:
    from gevent import pywsgi

    handler = pywsgi.WSGIHandler.__new__(pywsgi.WSGIHandler)
    handler.log_error("Invalid request line: %r", f"GET /{CANARY}")

    (line,) = lines_on_stderr(capfd)
    assert (line["source"], line["level"]) == ("gevent", "WARNING")


def test_uncaught_exceptions_are_logged_by_class_and_frames(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import threading

    for name in ("excepthook", "unraisablehook"):
        monkeypatch.setattr(sys, name, getattr(sys, name))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    logs.route_uncaught()

    try:
        fail(CANARY)
    except ValueError:
        sys.excepthook(*sys.exc_info())
    thread = threading.Thread(target=fail, args=(CANARY,))
    thread.start()
    thread.join()

    class Finalized:
        def __del__(self) -> None:
            fail(CANARY)

    Finalized()

    lines = lines_on_stderr(capfd)
    assert [line["message"] for line in lines] == [
        "Uncaught exception: ValueError",
        "Uncaught exception: ValueError",
        "Exception ignored: ValueError",
    ]
    assert all(line["traceback"][-1].endswith(":fail") for line in lines)
