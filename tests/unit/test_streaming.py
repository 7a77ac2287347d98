"""An asynchronous endpoint's big bodies, read and answered in blocks (byoc/streaming.py).

The thresholds are lowered here so that a few kB make many blocks; tests/functional/test_async.py
sends hundreds of MB through the real stack.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from iris_model import demo_hooks, save_iris_model

from byoc import defaults, formats, memory, settings, streaming
from byoc.app import create_app
from byoc.errors import InputError

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.8, 4.8, 1.8], [5.9, 3.0, 5.1, 1.8], [4.9, 2.5, 4.5, 1.7]]
SERVE = Path(__file__).resolve().parents[2] / "container" / "decision_trees" / "serve"
BLOCK = 100
"""Bytes per block here: a few rows each, most cut mid-row by the read."""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> defaults.Model:
    directory = tmp_path_factory.mktemp("model")
    save_iris_model(directory, max_leaf_nodes=5)
    return demo_hooks().model_fn(directory)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", 1000)
    monkeypatch.setattr(streaming, "BLOCK_BYTES", BLOCK)
    monkeypatch.setattr(streaming, "MAX_ROW_BYTES", 300)


def client(model: defaults.Model, **environ: str) -> Any:
    resolved = settings.resolve({"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **environ})
    return create_app(demo_hooks(), model, model.columns, resolved).test_client()


def post(app: Any, body: bytes, content_type: str = "text/csv", accept: str = "text/csv") -> Any:
    return app.post(
        "/invocations", data=body, headers={"Content-Type": content_type, "Accept": accept}
    )


def csv_body(rows: int) -> bytes:
    return b"".join(",".join(map(str, ROWS[i % len(ROWS)])).encode() + b"\n" for i in range(rows))


def jsonlines_body(rows: int) -> bytes:
    return b"".join(json.dumps(ROWS[i % len(ROWS)]).encode() + b"\n" for i in range(rows))


@pytest.mark.parametrize(
    ("content_type", "make"),
    [("text/csv", csv_body), ("application/jsonlines", jsonlines_body)],
)
@pytest.mark.parametrize(
    "accept", ["text/csv", "application/jsonlines", "application/json", "text/csv;verbose"]
)
def test_a_streamed_body_is_answered_as_the_whole_body_path_answers_it(
    model: defaults.Model,
    monkeypatch: pytest.MonkeyPatch,
    content_type: str,
    make: Any,
    accept: str,
) -> None:
    blocks_predicted = []
    predict_block = streaming._predict_block

    def counted(*args: Any) -> Any:
        blocks_predicted.append(args[0])
        return predict_block(*args)

    monkeypatch.setattr(streaming, "_predict_block", counted)
    body = make(400)
    whole = post(client(model), body, content_type, accept)
    streamed = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), body, content_type, accept)

    assert whole.status_code == streamed.status_code == 200
    assert streamed.headers["Content-Length"] == str(len(streamed.data))
    assert streamed.data == whole.data
    assert len(blocks_predicted) > 10
    assert streamed.headers["Content-Type"] == whole.headers["Content-Type"]


def test_batch_answers_join_the_blocks_with_one_line_break(model: defaults.Model) -> None:
    body = csv_body(400)
    whole = post(client(model, SAGEMAKER_BATCH="true"), body)
    streamed = post(client(model, SAGEMAKER_BATCH="true", SAGEMAKER_ASYNC_INFERENCE="true"), body)
    assert streamed.data == whole.data
    assert len(streamed.data.split(b"\n")) == 400


def test_a_header_row_is_skipped_once(model: defaults.Model) -> None:
    body = b"a,b,c,d\n" + csv_body(400)
    kind = "text/csv; header=present"
    streamed = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), body, kind)
    assert streamed.data == post(client(model), body, kind).data
    assert len(streamed.data.splitlines()) == 400


def test_a_small_body_is_answered_whole(model: defaults.Model) -> None:
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), csv_body(10))
    assert answer.status_code == 200


def test_a_bad_row_in_the_first_block_is_a_400_naming_it(model: defaults.Model) -> None:
    body = csv_body(3) + b"1,2,x,4\n" + csv_body(400)
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), body)
    assert answer.status_code == 400
    assert json.loads(answer.data)["error"].startswith('row 4: "x" is not a number')


@pytest.mark.parametrize("header", [False, True])
def test_a_bad_row_in_a_later_block_is_a_400_counted_from_the_bodys_first_line(
    model: defaults.Model, header: bool
) -> None:
    head = b"a,b,c,d\n" if header else b""
    body = head + csv_body(250) + b"1,2,x,4\n" + csv_body(250)
    kind = "text/csv; header=present" if header else "text/csv"
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), body, kind)
    assert answer.status_code == 400
    # As the whole-body path counts: the header is line 1.
    whole = post(client(model, SAGEMAKER_MAX_PAYLOAD_IN_MB="10"), body, kind)
    assert json.loads(answer.data) == json.loads(whole.data)
    assert json.loads(answer.data)["error"].startswith(f"row {251 + int(header)}: ")


def test_a_hook_failing_in_a_later_block_is_a_500_logged_with_the_hook(
    model: defaults.Model, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def predict_fn(data: Any, model: Any, request: Any) -> Any:
        calls.append(len(data))
        if len(calls) == 3:
            raise RuntimeError("the model exploded")
        return defaults.predict_fn(data, model, request)

    hooks = dataclasses.replace(demo_hooks(), predict_fn=predict_fn)
    resolved = settings.resolve({"SAGEMAKER_ASYNC_INFERENCE": "true"})
    app = create_app(hooks, model, model.columns, resolved).test_client()
    with caplog.at_level(logging.WARNING, logger="byoc"):
        answer = post(app, csv_body(400))
    assert answer.status_code == 500
    assert json.loads(answer.data)["error"] == "the model failed in predict_fn"
    (record,) = [r for r in caplog.records if r.getMessage().startswith("request failed")]
    assert record.hook == "predict_fn" and record.error == "RuntimeError"


def test_the_answers_temporary_file_is_deleted_once_sent(
    model: defaults.Model, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), csv_body(400))
    assert answer.status_code == 200 and len(answer.data.splitlines()) == 400
    assert list(tmp_path.iterdir()) == []


def test_a_row_longer_than_the_limit_is_a_400(model: defaults.Model) -> None:
    body = b"9" * 400 + b",1,2,3\n" + csv_body(400)
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), body)
    assert answer.status_code == 400
    assert json.loads(answer.data)["error"].startswith("row 1: longer than 300 bytes")


def test_npy_is_not_an_answer_to_a_streamed_body(model: defaults.Model) -> None:
    answer = post(client(model, SAGEMAKER_ASYNC_INFERENCE="true"), csv_body(400), accept="*/*")
    assert answer.status_code == 200
    answer = post(
        client(model, SAGEMAKER_ASYNC_INFERENCE="true"),
        csv_body(400),
        accept="application/x-npy",
    )
    assert answer.status_code == 406
    assert "application/x-npy" in json.loads(answer.data)["error"]


def test_a_charset_that_cannot_be_cut_at_line_ends_is_refused(model: defaults.Model) -> None:
    app = client(model, SAGEMAKER_ASYNC_INFERENCE="true")
    body = csv_body(400).decode().encode("utf-16")
    assert post(app, body, "text/csv; charset=utf-16").status_code == 415
    body = csv_body(400).decode().encode("latin-1")
    assert post(app, body, "text/csv; charset=latin-1").status_code == 200


def blocks(body: bytes, quoted: bool = True) -> list[bytes | None]:
    return list(streaming._blocks(io.BytesIO(body), len(body), quoted))


def test_blocks_end_at_line_ends_and_hold_the_whole_body() -> None:
    body = csv_body(100)
    pieces = blocks(body)
    assert b"".join(p for p in pieces if p is not None) == body
    assert len(pieces) > 10
    assert all(p is not None and p.endswith(b"\n") for p in pieces)


def test_a_line_break_in_a_quoted_cell_does_not_end_a_block() -> None:
    row = b'1,"a\nb ""c"" \n",2\n'
    body = row * 40
    pieces = blocks(body)
    assert b"".join(p for p in pieces if p is not None) == body
    # Each block is whole rows: a multiple of the row's bytes.
    assert all(p is not None and len(p) % len(row) == 0 for p in pieces)
    # JSON Lines escapes its line breaks: every break ends a row.
    assert all(p is not None and p.endswith(b"\n") for p in blocks(body, quoted=False))


def test_a_body_shorter_than_its_length_is_a_client_error() -> None:
    with pytest.raises(InputError, match="ended after 10 of its 20 bytes"):
        list(streaming._blocks(io.BytesIO(b"1,2,3,4\n" + b"1,"), 20, True))


def test_the_json_answer_is_what_formats_writes_for_the_whole() -> None:
    records = [{"predicted_label": "a", "probability": 0.5}, {"predicted_label": "b"}]
    joined = formats.encode(records, formats.JSON_LINES, True).replace(b"\n", b", ")
    assert b'{"predictions": [' + joined + b"]}" == formats.encode(records, formats.JSON, False)
    assert json.loads(b"[" + joined + b"]") == records


def test_an_async_endpoint_takes_sagemakers_limits_by_default() -> None:
    resolved = settings.resolve({"SAGEMAKER_ASYNC_INFERENCE": "TRUE"})
    assert resolved.async_inference
    assert resolved.max_payload_mb == 1024 and resolved.timeout == 3600
    # JSON and NPY are read whole: no more than batch transform's largest.
    assert resolved.buffered_payload_mb == 100
    assert resolved.body_buffer_bytes == 6 * 1024 * 1024
    assert resolved.as_dict()["worker_memory_mib"] == memory.worker_mib(100)


@pytest.mark.parametrize(
    ("environ", "payload_mb", "timeout"),
    [
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "200", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "900"}, 200, 900),
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "5000"}, 1024, 3600),
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}, 6, 3600),
    ],
)
def test_an_async_endpoints_limits_can_be_set_up_to_sagemakers(
    environ: dict[str, str], payload_mb: int, timeout: int
) -> None:
    resolved = settings.resolve({"SAGEMAKER_ASYNC_INFERENCE": "true", **environ})
    assert (resolved.max_payload_mb, resolved.timeout) == (payload_mb, timeout)


def test_a_real_time_endpoint_keeps_its_limits() -> None:
    resolved = settings.resolve({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024"})
    assert not resolved.async_inference
    assert resolved.max_payload_mb == 100 and resolved.timeout == 60
    assert resolved.body_buffer_bytes == resolved.max_payload_bytes


def test_nginx_spools_an_async_endpoints_bodies_and_waits_as_long_as_the_app(
    tmp_path: Path,
) -> None:
    environ = {
        **os.environ,
        "SAGEMAKER_ASYNC_INFERENCE": "true",
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SERVE_RUNTIME_DIR": str(tmp_path),
    }
    rendered = subprocess.run(
        [sys.executable, str(SERVE), "--print-nginx-config"],
        env=environ,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"client_max_body_size {1024 * 1024 * 1024};" in rendered
    assert f"client_body_buffer_size {6 * 1024 * 1024};" in rendered
    assert "proxy_read_timeout 3600s;" in rendered and "proxy_send_timeout 3600s;" in rendered


def test_a_header_row_is_hinted_at_in_the_first_block_only(model: defaults.Model) -> None:
    app = client(model, SAGEMAKER_ASYNC_INFERENCE="true")
    answer = post(app, b"a,b,c,d\n" + csv_body(400))
    assert json.loads(answer.data)["error"].endswith(formats.HEADER_HINT)


@pytest.fixture(scope="module")
def text_model() -> defaults.Model:
    """A Pipeline over a text column and two numbers (as examples/categorical_pipeline)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(1)
    colours = ["red", 'dark "blue"', "green,\nlight"]
    frame = pd.DataFrame(
        {
            "colour": rng.choice(colours, 200),
            "width": rng.normal(size=200).astype(np.float32),
            "height": rng.normal(size=200).astype(np.float32),
        }
    )
    labels = np.where((frame["colour"] == "red") | (frame["width"] > 1), "yes", "no")
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough"
    )
    pipeline = Pipeline([("encode", encode), ("model", LogisticRegression())]).fit(frame, labels)
    return defaults.Model(
        pipeline, {"feature_names": ["colour", "width", "height"], "string_columns": [0]}
    )


def test_a_text_column_with_quoted_line_breaks_is_answered_as_whole(
    text_model: defaults.Model,
) -> None:
    rows = [b"red,0.5,1\n", b'"dark ""blue""",2,-1\n', b'"green,\nlight",1.5,0\n']
    body = b"".join(rows[i % 3] for i in range(300))
    answers = []
    for environ in ({}, {"SAGEMAKER_ASYNC_INFERENCE": "true"}):
        resolved = settings.resolve({"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **environ})
        app = create_app(demo_hooks(), text_model, text_model.columns, resolved).test_client()
        answers.append(post(app, body))
    assert answers[0].status_code == answers[1].status_code == 200
    assert answers[1].data == answers[0].data
    assert len(answers[1].data.splitlines()) == 300
