"""The Flask app around the demo model's hooks, through Flask's test client."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from iris_model import FEATURES, demo_hooks, save_iris_model

from byoc import app as app_module
from byoc import defaults, formats, hooks, logs, settings
from byoc.app import create_app
from byoc.errors import InputError

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.8, 4.8, 1.8], [5.9, 3.0, 5.1, 1.8]]
CSV_BODY = "5.1,3.5,1.4,0.2\n6.2,2.8,4.8,1.8\n5.9,3.0,5.1,1.8\n"
MISSING_ROWS = [[5.1, None, 1.4, 0.2], [None, None, None, None], [6.2, 2.8, None, 1.8]]
CANARY = "8.76543219"
"""A cell value that must never reach the log."""


@dataclasses.dataclass(frozen=True)
class Served:
    hooks: hooks.Hooks
    model: defaults.Model
    estimator: Any
    """scikit-learn's own tree, loaded from the skops file, to compare with."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    import skops.io

    directory = tmp_path_factory.mktemp("model")
    save_iris_model(directory, max_leaf_nodes=5)
    model_hooks = demo_hooks()
    estimator = skops.io.load(directory / "model.skops", trusted=model_hooks.module.TRUSTED_TYPES)
    return Served(model_hooks, model_hooks.model_fn(directory), estimator)


def predicted(served: Served, rows: list[list[float | None]]) -> list[str]:
    matrix = np.array(rows, dtype=np.float64).astype(np.float32)
    return served.estimator.predict(matrix).tolist()


def make_client(served: Served, model_hooks: hooks.Hooks | None = None, **environ: str):
    resolved = settings.resolve(environ)
    model = served.model
    return create_app(model_hooks or served.hooks, model, model.columns, resolved).test_client()


@pytest.fixture(scope="module")
def client(served: Served) -> FlaskClient:
    return make_client(served, SAGEMAKER_MODEL_SERVER_WORKERS="2")


@pytest.fixture(scope="module")
def expected(served: Served) -> list[str]:
    """What scikit-learn itself predicts for ROWS."""
    return predicted(served, ROWS)


def post(client: FlaskClient, body: bytes | str, content_type: str | None, **headers: str):
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post("/invocations", data=body, headers=headers)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_the_demo_model_is_served_by_the_fast_tree(served: Served) -> None:
    from byoc import fasttree

    assert isinstance(served.model.estimator, fasttree.DecisionTree)
    assert served.model.columns == formats.Columns(tuple(FEATURES), frozenset())


def test_ping_answers_200_to_get_and_head(client: FlaskClient) -> None:
    assert client.get("/ping").status_code == 200
    assert client.head("/ping").status_code == 200


# ---------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (CSV_BODY, "text/csv"),
        (CSV_BODY.rstrip("\n"), "text/csv"),
        (CSV_BODY.replace("\n", "\r\n"), "text/csv"),
        (CSV_BODY, "text/csv; charset=utf-8"),
        (CSV_BODY, "TEXT/CSV"),
        (CSV_BODY, "text/csv; header=absent; foo=bar"),
        (CSV_BODY.replace("\n", "\r"), "text/csv"),
        (
            "sepal_length,sepal_width,petal_length,petal_width\n" + CSV_BODY,
            "text/csv;header=present",
        ),
        (CSV_BODY.encode("utf-16"), "text/csv; charset=UTF-16"),
        (CSV_BODY.encode("cp1252"), "text/csv; charset=windows-1252"),
        (json.dumps(ROWS).encode("utf-16-le"), "application/json; charset=utf-16le"),
        (CSV_BODY, None),
        (json.dumps(ROWS), "application/json"),
        (json.dumps({"instances": ROWS}), "application/json"),
        (json.dumps({"instances": [{"features": r} for r in ROWS]}), "application/json"),
        (json.dumps([dict(zip(FEATURES, r, strict=True)) for r in ROWS]), "application/json"),
        ("\n".join(json.dumps(r) for r in ROWS) + "\n", "application/json"),
        ("\n".join(json.dumps(r) for r in ROWS) + "\n", "application/jsonlines"),
        ("\n".join(json.dumps(r) for r in ROWS), "application/x-jsonlines"),
        (npy(np.array(ROWS)), "application/x-npy"),
        (npy(np.array(ROWS, dtype=np.float32)), "application/x-npy"),
    ],
)
def test_every_supported_input_gives_one_csv_line_per_row_in_order(
    client: FlaskClient, expected: list[str], body: bytes | str, content_type: str | None
) -> None:
    response = post(client, body, content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/csv"
    assert response.get_data(as_text=True) == "".join(f"{label}\n" for label in expected)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("5.1,,1.4,0.2\n,,,\n6.2,2.8,NA,1.8\n", "text/csv"),
        (json.dumps(MISSING_ROWS), "application/json"),
        (npy(np.array(MISSING_ROWS, dtype=np.float64)), "application/x-npy"),
    ],
)
def test_missing_values_are_predicted_as_scikit_learn_predicts_them(
    client: FlaskClient, served: Served, body: bytes | str, content_type: str
) -> None:
    response = post(client, body, content_type)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_data(as_text=True).splitlines() == predicted(served, MISSING_ROWS)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("5.1,3.5,1.4,0.2", "text/csv"), ("[5.1, 3.5, 1.4, 0.2]", "application/json")],
)
def test_a_single_row_is_one_prediction(client: FlaskClient, body: str, content_type: str) -> None:
    response = post(client, body, content_type)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "setosa\n"


def test_a_big_csv_body_gets_the_same_answers_as_a_small_one(client: FlaskClient) -> None:
    body = CSV_BODY * 2000
    assert len(body) > app_module.OFFLOAD_MIN_BYTES
    small = post(client, CSV_BODY, "text/csv").get_data(as_text=True)
    response = post(client, body, "text/csv")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == small * 2000


# ---------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    ("accept", "content_type", "decode"),
    [
        (None, "text/csv", lambda b: b.decode().splitlines()),
        ("*/*", "text/csv", lambda b: b.decode().splitlines()),
        ("text/csv", "text/csv", lambda b: b.decode().splitlines()),
        ("application/json", "application/json", lambda b: json.loads(b)["predictions"]),
        (
            "application/jsonlines",
            "application/jsonlines",
            lambda b: [json.loads(line) for line in b.decode().splitlines()],
        ),
        ("application/x-npy", "application/x-npy", lambda b: np.load(io.BytesIO(b)).tolist()),
        (
            "application/xml, application/json",
            "application/json",
            lambda b: json.loads(b)["predictions"],
        ),
        (
            "text/csv;q=0.5, application/json",
            "application/json",
            lambda b: json.loads(b)["predictions"],
        ),
        ("application/json;q=0, text/*", "text/csv", lambda b: b.decode().splitlines()),
        (
            "APPLICATION/JSON; charset=utf-8",
            "application/json",
            lambda b: json.loads(b)["predictions"],
        ),
    ],
)
def test_accept_chooses_the_response_type(
    client: FlaskClient,
    expected: list[str],
    accept: str | None,
    content_type: str,
    decode: Callable[[bytes], Any],
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = post(client, CSV_BODY, "text/csv", **headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert decode(response.get_data()) == expected


def verbose_records(served: Served, rows: list[list[float]]) -> list[dict[str, Any]]:
    matrix = np.array(rows, dtype=np.float32)
    probabilities = served.estimator.predict_proba(matrix)
    classes = served.estimator.classes_.tolist()
    return [
        {
            "predicted_label": label,
            "probability": max(row),
            "probabilities": row,
            "labels": classes,
        }
        for label, row in zip(
            served.estimator.predict(matrix).tolist(), probabilities.tolist(), strict=True
        )
    ]


def assert_records(records: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The same outputs in the same order; labels exactly, probabilities to rounding."""
    assert [list(r) for r in records] == [list(e) for e in expected]
    for record, wanted in zip(records, expected, strict=True):
        for name, value in wanted.items():
            if name.startswith("probabilit"):
                np.testing.assert_allclose(record[name], value, rtol=1e-12)
            else:
                assert record[name] == value


@pytest.mark.parametrize(
    "accept",
    ["application/json;verbose", "application/json; verbose", "application/json;verbose=true"],
)
def test_a_verbose_accept_answers_all_four_outputs(
    client: FlaskClient, served: Served, accept: str
) -> None:
    response = post(client, CSV_BODY, "text/csv", Accept=accept)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    records = response.get_json()["predictions"]
    assert [list(r) for r in records] == [list(defaults.OUTPUTS)] * len(ROWS)
    assert_records(records, verbose_records(served, ROWS))


def test_a_verbose_accept_answers_jsonlines_too(client: FlaskClient, served: Served) -> None:
    response = post(client, CSV_BODY, "text/csv", Accept="application/jsonlines;verbose")

    assert response.status_code == 200
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert_records(records, verbose_records(served, ROWS))


def test_a_non_verbose_accept_answers_the_labels(client: FlaskClient, expected: list[str]) -> None:
    response = post(client, CSV_BODY, "text/csv", Accept="application/json;verbose=false")

    assert response.get_json() == {"predictions": expected}


@pytest.mark.parametrize(
    "outputs",
    [
        ("probability",),
        ("probability", "predicted_label"),
        ("labels", "probabilities"),
        ("predicted_label", "probability", "probabilities", "labels"),
    ],
    ids=",".join,
)
def test_sagemaker_inference_output_chooses_the_outputs_and_their_order(
    served: Served, outputs: tuple[str, ...]
) -> None:
    client = make_client(served, SAGEMAKER_INFERENCE_OUTPUT=",".join(outputs))
    full = verbose_records(served, ROWS)

    response = post(client, CSV_BODY, "text/csv", Accept="application/json")

    assert response.status_code == 200
    records = response.get_json()["predictions"]
    assert [list(r) for r in records] == [list(outputs)] * len(ROWS)
    assert_records(records, [{k: r[k] for k in outputs} for r in full])


def test_sagemaker_inference_output_in_csv_is_one_cell_per_output(served: Served) -> None:
    client = make_client(served, SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probability")
    full = verbose_records(served, ROWS)

    response = post(client, CSV_BODY, "text/csv")

    lines = response.get_data(as_text=True).splitlines()
    assert [line.split(",")[0] for line in lines] == [r["predicted_label"] for r in full]
    assert [float(line.split(",")[1]) for line in lines] == pytest.approx(
        [r["probability"] for r in full]
    )


def test_the_default_accept_comes_from_the_environment(served: Served) -> None:
    client = make_client(served, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    response = post(client, CSV_BODY, "text/csv", Accept="*/*")
    assert response.headers["Content-Type"] == "application/json"
    assert post(client, CSV_BODY, "text/csv").headers["Content-Type"] == "application/json"


def test_an_unsupported_default_accept_is_refused_at_start(served: Served) -> None:
    with pytest.raises(ValueError, match="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"):
        make_client(served, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/html")


@pytest.mark.parametrize(
    ("accept", "encode"),
    [("text/csv", str), ("application/jsonlines", json.dumps), ("application/json", json.dumps)],
)
def test_batch_mode_answers_one_record_per_input_line_and_no_trailing_newline(
    served: Served, expected: list[str], accept: str, encode: Callable[[str], str]
) -> None:
    client = make_client(served, SAGEMAKER_BATCH="True")
    response = post(client, CSV_BODY, "text/csv", Accept=accept)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "\n".join(encode(label) for label in expected)


# ---------------------------------------------------------------------------- 4xx


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("5.1,3.5,1.4,0.2\n6.2,2.8,4.8\n", "text/csv", "row 2: expected 4 features, got 3"),
        ("5.1,3.5,1.4,0.2\n6.2,abc,4.8,1.8\n", "text/csv", 'row 2: "abc" is not a number'),
        ("a,b,c,d\n5.1,3.5,1.4,0.2\n", "text/csv", 'row 1: "a" is not a number (a header'),
        ("5.1,inf,1.4,0.2\n", "text/csv", "row 1: feature 2 is inf, not finite"),
        ("5.1,3.5,1.4,0.2\n1,1,-inf,1\n", "text/csv", "row 2: feature 3 is -inf, not finite"),
        ("[[5.1, 3.5, 1.4", "application/json", "malformed JSON"),
        ("[[5.1, 3.5, 1.4, 0.2], [1, 2]]", "application/json", "row 2: expected 4 features"),
        ('[{"sepal_length": 1, "petal": 2}]', "application/json", 'unknown keys "petal"'),
        ("[1, 2, 3, 4]\n[1, 2", "application/jsonlines", "row 2: malformed JSON"),
        (npy(np.array([["a", "b", "c", "d"]], dtype=object)), "application/x-npy", "pickle"),
        (npy(np.zeros((2, 3))), "application/x-npy", "row 1: expected 4 features, got 3"),
        (b"\xff\xfe,1,2,3", "text/csv", "not UTF-8"),
    ],
)
def test_bad_input_is_a_400_naming_row_and_problem(
    client: FlaskClient, body: bytes | str, content_type: str, message: str
) -> None:
    response = post(client, body, content_type)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.get_json()["error"]


def test_a_short_row_deep_in_a_big_csv_is_named(client: FlaskClient) -> None:
    response = post(client, CSV_BODY * 1000 + "1,2,3\n" + CSV_BODY, "text/csv")
    assert response.status_code == 400
    assert response.get_json()["error"] == "row 3001: expected 4 features, got 3"


@pytest.mark.parametrize("content_type", ["text/csv", "application/json", "application/x-npy"])
def test_an_empty_body_is_a_400(client: FlaskClient, content_type: str) -> None:
    response = post(client, b"", content_type)
    assert response.status_code == 400
    assert "empty" in response.get_json()["error"]


def test_an_unsupported_content_type_is_a_415_listing_the_supported_ones(
    client: FlaskClient,
) -> None:
    response = post(client, "<rows/>", "application/xml")
    assert response.status_code == 415
    error = response.get_json()["error"]
    for media_type in formats.MEDIA_TYPES:
        assert media_type in error


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("text/csv; charset=klingon", '"klingon"'),
        ("text/csv; charset=zlib_codec", '"zlib_codec"'),
        ("text/csv; header=yes", "present or absent"),
    ],
)
def test_an_unreadable_content_type_parameter_is_a_415_naming_it(
    client: FlaskClient, content_type: str, named: str
) -> None:
    response = post(client, CSV_BODY, content_type)
    assert response.status_code == 415
    assert named in response.get_json()["error"]


def test_a_compressed_body_is_a_415(client: FlaskClient) -> None:
    response = post(
        client, gzip.compress(CSV_BODY.encode()), "text/csv", **{"Content-Encoding": "gzip"}
    )
    assert response.status_code == 415
    assert "uncompressed" in response.get_json()["error"]


def test_a_body_not_in_its_charset_is_a_400_naming_it(client: FlaskClient) -> None:
    response = post(client, b"\xff\xfe\xfd", "text/csv; charset=utf-16le")
    assert response.status_code == 400
    assert "utf-16-le" in response.get_json()["error"]


@pytest.mark.parametrize("accept", ["text/html", "application/xml, image/png", "text/csv;q=0"])
def test_an_unacceptable_accept_is_a_406(client: FlaskClient, accept: str) -> None:
    response = post(client, CSV_BODY, "text/csv", Accept=accept)
    assert response.status_code == 406
    assert "text/csv" in response.get_json()["error"]


def test_a_body_over_the_limit_is_a_413_from_the_app(client: FlaskClient) -> None:
    body = b"1" * (settings.MIN_PAYLOAD_MB * settings.MIB + 1)
    response = post(client, body, "text/csv")
    assert response.status_code == 413
    assert "6291456 bytes" in response.get_json()["error"]


def test_a_body_without_a_content_length_is_read_too(
    client: FlaskClient, expected: list[str]
) -> None:
    response = client.post(
        "/invocations",
        input_stream=io.BytesIO(CSV_BODY.encode()),
        headers={"Content-Type": "text/csv", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 200
    assert response.get_data(as_text=True).splitlines() == expected


def test_a_body_at_the_limit_is_accepted(client: FlaskClient) -> None:
    row = "5.1,3.5,1.4,0.2\n"
    body = row * (settings.MIN_PAYLOAD_MB * settings.MIB // len(row))
    body += "1" * (settings.MIN_PAYLOAD_MB * settings.MIB - len(body))
    assert len(body) == settings.MIN_PAYLOAD_MB * settings.MIB
    assert post(client, body, "text/csv").status_code != 413


def test_an_unknown_path_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/predict")
    assert response.status_code == 404
    assert "/invocations" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/invocations", "OPTIONS, POST"), ("POST", "/ping", "GET, HEAD, OPTIONS")],
)
def test_a_wrong_method_is_a_json_405_with_the_allowed_methods(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == f"{method} is not allowed on {path}"
    assert response.content_type == "application/json"
    assert ", ".join(sorted(response.allow)) == allowed


def test_sagemaker_and_unknown_headers_do_not_change_the_answer(client: FlaskClient) -> None:
    plain = post(client, CSV_BODY, "text/csv")
    decorated = post(
        client,
        CSV_BODY,
        "text/csv",
        **{
            "X-Amzn-SageMaker-Custom-Attributes": "trace=1,accept=application/json",
            "X-Amzn-SageMaker-Target-Model": "other.tar.gz",
            "X-Amzn-SageMaker-Inference-Id": "abc",
            "X-Something-Else": "?",
        },
    )
    assert decorated.status_code == 200
    assert decorated.get_data() == plain.get_data()
    assert decorated.headers["Content-Type"] == plain.headers["Content-Type"]


def test_execution_parameters_report_workers_and_the_enforced_limit(served: Served) -> None:
    client = make_client(
        served, SAGEMAKER_MODEL_SERVER_WORKERS="3", SAGEMAKER_MAX_PAYLOAD_IN_MB="20"
    )
    assert client.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 20,
    }


# ---------------------------------------------------------------------------- hooks failing


def failing(message: str = "the model exploded") -> Callable[..., Any]:
    def hook(*_: Any) -> Any:
        raise RuntimeError(message)

    return hook


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the log handler would write: the JSON lines of byoc/logs.py."""
    formatter = logs.JsonFormatter()
    return "\n".join(formatter.format(r) for r in caplog.records)


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logged_text(caplog).splitlines()]


@pytest.mark.parametrize("hook", ["input_fn", "predict_fn", "output_fn"])
def test_a_failing_hook_is_a_500_logged_once_by_name_without_the_body(
    served: Served, caplog: pytest.LogCaptureFixture, hook: str
) -> None:
    broken = dataclasses.replace(served.hooks, **{hook: failing()})
    client = make_client(served, broken)
    body = f"{CANARY},3.5,1.4,0.2\n"
    caplog.set_level(logging.INFO)

    response = post(client, body, "text/csv", **{"X-Request-Id": "req-42"})

    assert response.status_code == 500
    assert response.get_json() == {"error": f"the model failed in {hook}", "request_id": "req-42"}
    assert len(error_records(caplog)) == 1
    (line,) = logged(caplog)
    assert line["message"] == f"request failed in {hook}"
    assert line["level"] == "ERROR"
    assert line["source"] == "app"
    assert (line["request_id"], line["status"], line["hook"]) == ("req-42", 500, hook)
    assert line["error"] == "RuntimeError"
    assert line["traceback"][-1].endswith(":hook")  # where it failed
    assert "the model exploded" not in logged_text(caplog)  # messages may quote request data
    assert CANARY not in logged_text(caplog)
    assert CANARY not in response.get_data(as_text=True)


def test_a_hook_error_quoting_the_request_keeps_the_request_out_of_the_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Library errors often quote the values they fail on (`could not convert ...: '8.7'`)."""

    def quoting(rows: np.ndarray, model: Any) -> Any:
        raise ValueError(f"cannot use {rows.tolist()}")

    assert CANARY in str(np.array([[float(CANARY)]]).tolist())
    client = make_client(served, dataclasses.replace(served.hooks, input_fn=quoting))
    caplog.set_level(logging.INFO)

    response = post(client, f"{CANARY},3.5,1.4,0.2\n", "text/csv", **{"X-Request-Id": "req-7"})

    assert response.status_code == 500
    assert len(error_records(caplog)) == 1
    assert logged(caplog)[0]["hook"] == "input_fn"
    assert CANARY not in logged_text(caplog)


def test_the_next_request_after_a_failing_hook_succeeds(
    served: Served, expected: list[str]
) -> None:
    calls = []

    def once_broken(data: Any, model: Any, request: defaults.Request) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("only the first time")
        return defaults.predict_fn(data, model, request)

    client = make_client(served, dataclasses.replace(served.hooks, predict_fn=once_broken))

    assert post(client, CSV_BODY, "text/csv").status_code == 500
    response = post(client, CSV_BODY, "text/csv")
    assert response.status_code == 200
    assert response.get_data(as_text=True).splitlines() == expected


def test_a_500_without_a_request_id_makes_one(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(served, dataclasses.replace(served.hooks, output_fn=failing()))
    caplog.set_level(logging.INFO)

    response = post(client, CSV_BODY, "text/csv")

    request_id = response.get_json()["request_id"]
    assert len(request_id) >= 16
    assert logged(caplog)[0]["request_id"] == request_id


def test_an_input_error_of_a_hook_is_a_400_with_its_message_and_no_error_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    def picky(data: Any, model: Any) -> Any:
        raise InputError("row 1: sepal_length must be positive")

    client = make_client(served, dataclasses.replace(served.hooks, input_fn=picky))
    caplog.set_level(logging.INFO)

    response = post(client, CSV_BODY, "text/csv")

    assert response.status_code == 400
    assert response.get_json() == {"error": "row 1: sepal_length must be positive"}
    assert error_records(caplog) == []
    (line,) = logged(caplog)
    assert (line["level"], line["status"], line["error"]) == ("WARNING", 400, "InputError")
    assert "sepal_length" not in logged_text(caplog)


def test_output_fn_answering_the_wrong_number_of_records_is_its_500(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(
        served, dataclasses.replace(served.hooks, output_fn=lambda *_: ["only one"])
    )
    caplog.set_level(logging.INFO)

    response = post(client, CSV_BODY, "text/csv", **{"X-Request-Id": "req-9"})

    assert response.status_code == 500
    assert response.get_json() == {"error": "the model failed in output_fn", "request_id": "req-9"}
    assert "1 records for 3 rows" in logged_text(caplog)


def test_a_server_fault_outside_the_hooks_is_a_json_500_with_the_request_id(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    message = "disk on fire"

    def broken(*_: object) -> None:
        raise RuntimeError(message)  # a variable: the traceback's source line does not quote it

    monkeypatch.setattr(formats, "encode", broken)
    caplog.set_level(logging.INFO)
    response = post(client, CSV_BODY, "text/csv", **{"X-Request-Id": "req-43"})

    assert response.status_code == 500
    assert response.get_json() == {"error": "internal server error", "request_id": "req-43"}
    (line,) = logged(caplog)
    assert (line["level"], line["request_id"], line["status"]) == ("ERROR", "req-43", 500)
    assert line["error"] == "RuntimeError"
    assert "hook" not in line
    assert "disk on fire" not in logged_text(caplog)  # messages may quote request data


# ---------------------------------------------------------------------------- client errors logged

CSV, JSON = "text/csv", "application/json"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "error"),
    [
        ("POST", "/invocations", f"1,{CANARY},3\n", {"Content-Type": CSV}, 400, "DecodeError"),
        ("POST", "/invocations", f'[[{CANARY}, "', {"Content-Type": JSON}, 400, "DecodeError"),
        ("POST", "/invocations", CANARY, {"Content-Type": f"text/{CANARY}"}, 415, "ClientError"),
        ("POST", "/invocations", CANARY, {"Accept": f"text/{CANARY}"}, 406, "ClientError"),
        ("POST", "/invocations", "", {"Content-Type": "text/csv"}, 400, "ClientError"),
        ("GET", f"/{CANARY}?q={CANARY}", None, {}, 404, "NotFound"),
        ("PUT", "/ping", CANARY, {}, 405, "MethodNotAllowed"),
    ],
)  # fmt: skip
def test_a_client_error_is_logged_once_by_status_and_class_never_with_its_message(
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    caplog.set_level(logging.INFO)

    response = client.open(
        path, method=method, data=body, headers={**headers, "X-Request-Id": "r1"}
    )

    assert response.status_code == status
    assert "request_id" not in response.get_json()  # the body stays as it was
    (line,) = logged(caplog)
    assert line["level"] == "WARNING"
    assert (line["request_id"], line["status"], line["error"]) == ("r1", status, error)
    assert "traceback" not in line
    assert CANARY not in logged_text(caplog)


def test_a_request_id_that_is_not_a_plain_token_is_logged_as_a_new_one(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    client.get("/nowhere", headers={"X-Request-Id": f"{CANARY} " * 50})

    (line,) = logged(caplog)
    assert len(line["request_id"]) == 32
    assert CANARY not in logged_text(caplog)
