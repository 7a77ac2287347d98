"""The real `serve`'s logs: every line JSON and bounded, no request data, one line per failure."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from iris_model import save_iris_model
from serving import ROOT, Server, start

from byoc import logs

CANARY = "7.13579246"
"""A feature value that must reach no log; the hook below fails on it, quoting it."""
PATH_CANARY = "canary-path-8642"
ROW = b"5.1,3.5,1.4,0.2\n"
HOOKS = f"""
from byoc import defaults

print("the model module prints", flush=True)


def input_fn(rows, model):
    if abs(float(rows[0][0]) - {CANARY}) < 1e-5:
        raise ValueError(f"cannot use {{rows.tolist()}}")
    return defaults.input_fn(rows, model)
"""
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@dataclass
class Sent:
    """A request, what the client saw, and which lines should log it."""

    name: str
    status: int
    request_id: str
    error: str | None
    """The error class of the app's line; None: the app logs nothing (a success, or nginx's)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Server, list[Sent]]:
    """A server that was sent each kind of request once, then stopped."""
    base = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(base / "model", max_leaf_nodes=5)
    module = base / "logging_predictor.py"
    demo = (ROOT / "container" / "decision_trees" / "predictor.py").read_text()
    module.write_text(demo + HOOKS)
    server = start(
        base,
        tmp_path_factory.mktemp("serve"),
        BYOC_PREDICTOR=str(module),
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
    )
    canary_row = f"{CANARY},3.5,1.4,0.2\n".encode()
    requests: list[tuple[str, str, str, bytes | None, dict[str, str], int, str | None]] = [
        ("ping", "GET", "/ping", None, {}, 200, None),
        ("predict", "POST", "/invocations", ROW * 3, {"Content-Type": "text/csv"}, 200, None),
        ("bad csv", "POST", "/invocations", f"1,{CANARY},x\n".encode(), {}, 400, "DecodeError"),
        (
            "bad json",
            "POST",
            "/invocations",
            f'[[{CANARY}, "'.encode(),
            {"Content-Type": "application/json"},
            400,
            "DecodeError",
        ),
        (
            "bad type",
            "POST",
            "/invocations",
            ROW,
            {"Content-Type": f"text/{CANARY}"},
            415,
            "ClientError",
        ),
        (
            "bad accept",
            "POST",
            "/invocations",
            ROW,
            {"Accept": f"text/{CANARY}"},
            406,
            "ClientError",
        ),
        ("too large", "POST", "/invocations", canary_row * 300_000, {}, 413, None),
        ("hook fails", "POST", "/invocations", canary_row, {}, 500, "ValueError"),
        # Large enough to be predicted in gevent's threadpool, whose errors carry the call.
        ("hook fails big", "POST", "/invocations", canary_row * 5000, {}, 500, "ValueError"),
        ("no such path", "GET", f"/{PATH_CANARY}?q={PATH_CANARY}", None, {}, 404, "NotFound"),
        ("bad method", "PUT", f"/ping?{PATH_CANARY}", ROW, {}, 405, "MethodNotAllowed"),
    ]
    sent = []
    try:
        server.wait_ready()
        for name, method, path, body, headers, status, error in requests:
            answer = server.request(method, path, body, headers)
            assert answer[0] == status, (name, answer)
            if status == 500:
                assert json.loads(answer[2])["request_id"] == answer[1]["X-Request-Id"]
            sent.append(Sent(name, status, answer[1]["X-Request-Id"], error))
    finally:
        assert server.stop() == 0, server.output
    return server, sent


def test_every_line_is_a_json_object_within_the_bound(served: tuple[Server, list[Sent]]) -> None:
    server, _ = served
    raw = server.log.read_bytes().splitlines()
    assert len(raw) > 20
    for line in raw:
        assert len(line) < logs.MAX_LINE_BYTES
        parsed = json.loads(line)
        assert {"time", "level", "source", "message"} <= parsed.keys(), parsed
        assert parsed["level"] in LEVELS, parsed


def test_no_request_data_reaches_the_log(served: tuple[Server, list[Sent]]) -> None:
    server, _ = served
    assert CANARY not in server.output
    assert PATH_CANARY not in server.output
    assert "Traceback" not in server.output


def test_each_failure_the_app_saw_is_one_line_with_its_id_status_and_error_class(
    served: tuple[Server, list[Sent]],
) -> None:
    server, sent = served
    app = [line for line in server.lines if line["source"] == "app"]
    assert len(app) == sum(1 for request in sent if request.error)
    for request in sent:
        mine = [line for line in app if line["request_id"] == request.request_id]
        if request.error is None:
            assert mine == [], request.name
            continue
        (line,) = mine
        assert (line["status"], line["error"]) == (request.status, request.error), request.name
        assert line["level"] == ("ERROR" if request.status >= 500 else "WARNING")
        if request.status >= 500:
            assert line["hook"] == "input_fn"
            assert line["traceback"], request.name


def test_the_access_log_has_one_line_per_request(served: tuple[Server, list[Sent]]) -> None:
    server, sent = served
    access = [line for line in server.lines if line["source"] == "nginx" and "status" in line]
    by_id = Counter(line["request_id"] for line in access)
    for request in sent:
        assert by_id[request.request_id] == 1, request.name
        (line,) = [x for x in access if x["request_id"] == request.request_id]
        assert line["status"] == request.status
        assert line["path"] in ("/ping", "/invocations", "other")
        assert isinstance(line["bytes_in"], int)
        assert isinstance(line["request_time"], float)
    ours = {request.request_id for request in sent}
    # The rest are the readiness checks of the test.
    assert {(x["method"], x["path"]) for x in access if x["request_id"] not in ours} <= {
        ("GET", "/ping")
    }
    assert [x["path"] for x in access if x["request_id"] == sent[9].request_id] == ["other"]


def test_what_a_model_prints_is_wrapped(served: tuple[Server, list[Sent]]) -> None:
    server, _ = served
    printed = [line for line in server.lines if line["message"] == "the model module prints"]
    assert [line["source"] for line in printed] == ["gunicorn"]


def source_counts(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(line["source"] for line in lines)


def test_serve_gunicorn_and_nginx_all_log_in_the_format(served: tuple[Server, list[Sent]]) -> None:
    server, _ = served
    counts = source_counts(server.lines)
    assert counts["serve"] >= 3  # settings, listening, stopping, stopped
    assert counts["gunicorn"] >= 3  # booting, workers, exiting
    assert counts["nginx"] >= 11
    assert "stopped" in [line["message"] for line in server.lines if line["source"] == "serve"]
