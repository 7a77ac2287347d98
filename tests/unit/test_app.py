"""The Flask app through its test client: every row of the media-type, Accept and error matrix."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from iris_model import save_iris_model

import predictor
import settings
from app import create_app

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.8, 4.8, 1.8], [5.9, 3.0, 5.1, 1.8]]
CSV_BODY = "5.1,3.5,1.4,0.2\n6.2,2.8,4.8,1.8\n5.9,3.0,5.1,1.8\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    save_iris_model(directory, max_leaf_nodes=5)
    return directory


@pytest.fixture(scope="module")
def expected(model_dir: Path) -> list[str]:
    """What scikit-learn itself predicts for ROWS."""
    import skops.io

    estimator = skops.io.load(model_dir / "model.skops", trusted=["sklearn.tree._tree.Tree"])
    return [str(label) for label in estimator.predict(np.array(ROWS, dtype=np.float32))]


def make_client(model_dir: Path, **environ: str) -> FlaskClient:
    resolved = settings.resolve({"SAGEMAKER_BASE_DIR": str(model_dir.parent), **environ})
    resolved = settings.Settings(**{**resolved.__dict__, "model_dir": model_dir})
    return create_app(predictor.load_model(model_dir), resolved).test_client()


@pytest.fixture(scope="module")
def client(model_dir: Path) -> FlaskClient:
    return make_client(model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="2")


def post(client: FlaskClient, body: bytes | str, content_type: str | None, **headers: str):
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post("/invocations", data=body, headers=headers)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_ping_answers_200_to_get_and_head(client: FlaskClient) -> None:
    assert client.get("/ping").status_code == 200
    assert client.head("/ping").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (CSV_BODY, "text/csv"),
        (CSV_BODY.rstrip("\n"), "text/csv"),
        (CSV_BODY.replace("\n", "\r\n"), "text/csv"),
        (CSV_BODY, "text/csv; charset=utf-8"),
        (CSV_BODY, "TEXT/CSV"),
        (CSV_BODY, "text/csv; header=absent; foo=bar"),
        (CSV_BODY, None),
        (json.dumps(ROWS), "application/json"),
        (json.dumps({"instances": ROWS}), "application/json"),
        (json.dumps({"instances": [{"features": r} for r in ROWS]}), "application/json"),
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
    [("5.1,3.5,1.4,0.2", "text/csv"), ("[5.1, 3.5, 1.4, 0.2]", "application/json")],
)
def test_a_single_row_is_one_prediction(client: FlaskClient, body: str, content_type: str) -> None:
    response = post(client, body, content_type)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "setosa\n"


def test_a_big_csv_body_takes_the_same_answers_as_a_small_one(client: FlaskClient) -> None:
    body = CSV_BODY * 2000
    small = post(client, CSV_BODY, "text/csv").get_data(as_text=True)
    response = post(client, body, "text/csv")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == small * 2000


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
        ("application/xml, application/json", "application/json", lambda b: b"predictions" in b),
        ("text/csv;q=0.5, application/json", "application/json", lambda b: b"predictions" in b),
        ("application/json;q=0, text/*", "text/csv", lambda b: b.decode().splitlines()),
        ("APPLICATION/JSON; charset=utf-8", "application/json", lambda b: b"predictions" in b),
    ],
)
def test_accept_chooses_the_response_type(
    client: FlaskClient, expected: list[str], accept: str | None, content_type: str, decode
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = post(client, CSV_BODY, "text/csv", **headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    decoded = decode(response.get_data())
    assert decoded is True or decoded == expected


def test_the_default_accept_comes_from_the_environment(model_dir: Path) -> None:
    client = make_client(model_dir, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    response = post(client, CSV_BODY, "text/csv", Accept="*/*")
    assert response.headers["Content-Type"] == "application/json"
    assert post(client, CSV_BODY, "text/csv").headers["Content-Type"] == "application/json"


def test_an_unsupported_default_accept_is_refused_at_start(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"):
        make_client(model_dir, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/html")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("5.1,3.5,1.4,0.2\n6.2,2.8,4.8\n", "text/csv", "row 2: expected 4 features, got 3"),
        ("5.1,3.5,1.4\n6.2,2.8,4.8\n", "text/csv", "row 1: expected 4 features, got 3"),
        ("5.1,3.5,1.4,0.2\n6.2,abc,4.8,1.8\n", "text/csv", 'row 2: "abc" is not a number'),
        ("a,b,c,d\n5.1,3.5,1.4,0.2\n", "text/csv", 'row 1: "a" is not a number (a header'),
        ("5.1,3.5,1.4,0.2\n\n6.2,2.8,4.8,1.8\n", "text/csv", "row 2: expected 4 features, got 0"),
        ("5.1,3.5,,0.2\n", "text/csv", 'row 1: "" is not a number'),
        ("5.1,inf,1.4,0.2\n", "text/csv", "row 1: feature 2 is inf, not finite"),
        ("5.1,3.5,1.4,nan\n", "text/csv", "row 1: feature 4 is nan, not finite"),
        (b"\xff\xfe,1,2,3", "text/csv", "not UTF-8"),
        ("[[5.1, 3.5, 1.4", "application/json", "malformed JSON"),
        ('{"rows": []}', "application/json", '"instances"'),
        ('"text"', "application/json", "JSON must be"),
        ("[[5.1, 3.5, 1.4, 0.2], [1, 2]]", "application/json", "row 2: expected 4 features"),
        ('[[5.1, 3.5, 1.4, "x"]]', "application/json", 'row 1: "x" is not a number'),
        ("[1, 2, 3, 4]\n[1, 2", "application/jsonlines", "row 2: malformed JSON"),
        ('[1, 2, 3, 4]\n"x"\n', "application/jsonlines", "row 2: expected a list"),
        (npy(np.array([["a", "b", "c", "d"]], dtype=object)), "application/x-npy", "pickle"),
        (npy(np.array([["a", "b", "c", "d"]])), "application/x-npy", "not numbers"),
        (npy(np.zeros((2, 3))), "application/x-npy", "row 1: expected 4 features, got 3"),
        (npy(np.zeros((1, 2, 4))), "application/x-npy", "3 dimensions"),
        (b"not an npy file", "application/x-npy", "not a readable .npy"),
    ],
)
def test_bad_input_is_a_400_naming_row_and_problem(
    client: FlaskClient, body: bytes | str, content_type: str, message: str
) -> None:
    response = post(client, body, content_type)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.get_json()["error"]


def test_a_header_row_in_a_big_csv_names_row_1(client: FlaskClient) -> None:
    response = post(client, "a,b,c,d\n" + CSV_BODY * 2000, "text/csv")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith('row 1: "a" is not a number')


def test_a_short_row_deep_in_a_big_csv_is_named(client: FlaskClient) -> None:
    response = post(client, CSV_BODY * 1000 + "1,2,3\n" + CSV_BODY, "text/csv")
    assert response.status_code == 400
    assert response.get_json()["error"] == "row 3001: expected 4 features, got 3"


@pytest.mark.parametrize("cell", ["", "NA", "null"])
def test_an_empty_or_null_cell_is_named_the_same_in_a_small_and_a_big_csv(
    client: FlaskClient, cell: str
) -> None:
    row = f"5.1,{cell},1.4,0.2\n"
    for body, number in ((row, 1), (CSV_BODY * 1000 + row, 3001)):
        response = post(client, body, "text/csv")
        assert response.status_code == 400
        assert response.get_json()["error"].startswith(f'row {number}: "{cell}" is not a number')


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
    for media_type in (
        "text/csv",
        "application/json",
        "application/jsonlines",
        "application/x-npy",
    ):
        assert media_type in error


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
    assert len(body) == settings.MIN_PAYLOAD_MB * settings.MIB
    assert post(client, body, "text/csv").status_code == 200


def test_an_unknown_path_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/predict")
    assert response.status_code == 404
    assert "/invocations" in response.get_json()["error"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/invocations"), ("POST", "/ping")])
def test_a_wrong_method_is_a_json_405(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == f"{method} is not allowed on {path}"


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


def test_execution_parameters_report_workers_and_the_enforced_limit(model_dir: Path) -> None:
    client = make_client(
        model_dir, SAGEMAKER_MODEL_SERVER_WORKERS="3", SAGEMAKER_MAX_PAYLOAD_IN_MB="20"
    )
    assert client.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 20,
    }


@pytest.mark.parametrize(
    ("accept", "encode"),
    [("text/csv", str), ("application/jsonlines", json.dumps), ("application/json", json.dumps)],
)
def test_batch_mode_answers_one_record_per_input_line_and_no_trailing_newline(
    model_dir: Path, expected: list[str], accept: str, encode
) -> None:
    client = make_client(model_dir, SAGEMAKER_BATCH="True")
    response = post(client, CSV_BODY, "text/csv", Accept=accept)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "\n".join(encode(label) for label in expected)


def test_a_server_fault_is_a_json_500_with_the_request_id(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(predictor, "predict", broken)
    response = post(client, CSV_BODY, "text/csv", **{"X-Request-Id": "req-42"})
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal server error", "request_id": "req-42"}
