"""Fuzzing the real nginx -> gunicorn -> Flask stack: from the OpenAPI document (schemathesis), and
with hand-written hostile CSV, NPY and JSON bodies and odd headers (hypothesis).

Every request must get 2xx, or a 4xx with a JSON error; never a 5xx or a dropped connection.
Afterwards /ping still answers 200 and no body's canary is in the server's output. The examples are
derandomized (the same every run; hypothesis prints the falsifying one) and bounded by
`max_examples`; the totals per status are printed at the end of the module.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from conftest import SUMMARY
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from iris_model import save_iris_model
from openapi_document import DOCUMENT
from serving import Server, running

from byoc import formats

PROGRAM_DIR = Path(formats.__file__).resolve().parents[1]
CANARY = "Zq7canary"
"""In every fuzzed body the format can carry it; followed by a number unique to the request."""
FOUR_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width")

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

tally: Counter[tuple[str, int]] = Counter()
"""Responses per (fuzz test, status), printed when the module ends."""
canaries = iter(range(10**9))


def canary() -> str:
    # Of one length, so that a replayed example draws the same as the first time.
    return f"{CANARY}{next(canaries):09d}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    base_dir = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(base_dir / "model", max_leaf_nodes=5)
    # The session's summary prints these lines (tests/conftest.py): a fixture's output is captured.
    request.config.stash[SUMMARY] = [
        *request.config.stash.get(SUMMARY, []),
        lambda: (
            [f"fuzz: {test}: {n} x {status}" for (test, status), n in sorted(tally.items())]
            + [f"fuzz: {sum(tally.values())} requests in all"]
        ),
    ]
    with running(
        base_dir, tmp_path_factory.mktemp("serve"), SAGEMAKER_MODEL_SERVER_WORKERS="2"
    ) as up:
        yield up


def send(server: Server, test: str, body: bytes, headers: dict[str, str]) -> None:
    """POST `body` to /invocations; assert a 2xx, or a 4xx with a JSON error, and count it."""
    note(f"headers={headers!r} body={body[:2000]!r}{'...' if len(body) > 2000 else ''}")
    try:
        status, answer_headers, answer = server.request("POST", "/invocations", body, headers)
    except (OSError, http.client.HTTPException) as e:
        raise AssertionError(f"the connection failed: {type(e).__name__}: {e}") from None
    tally[test, status] += 1
    assert status < 500, answer
    if status >= 400:
        assert answer_headers.get("Content-Type") == "application/json", answer
        error = json.loads(answer)
        assert isinstance(error.get("error"), str), answer
    else:
        assert answer_headers.get("Content-Type") in formats.MEDIA_TYPES


# The OpenAPI document, through schemathesis.

# The multi-model paths are served only by a multi-model endpoint (test_multi_model.py).
SCHEMA = DOCUMENT.exclude(path_regex="^/models")


@SCHEMA.parametrize()
@settings(FUZZ, max_examples=150)
def test_the_server_answers_as_its_openapi_document_says(server: Server, case: Any) -> None:
    # schemathesis.pytest.from_fixture would load the schema with the server's address, but it
    # sets an attribute that pytest 9 no longer has (Function._nodeid): the address goes here.
    base_url = f"http://127.0.0.1:{server.port}"
    response = case.call(base_url=base_url)
    tally["openapi", response.status_code] += 1
    # Not positive_data_acceptance: the document cannot say how many features the model reads, so
    # a body it allows (three numbers for a four-feature model) is still a 400. Nor, but for JSON,
    # negative_data_rejection: the schema of a text body is "a string", which every body sent is.
    excluded = [schemathesis.checks.positive_data_acceptance]
    if case.media_type not in (None, formats.JSON):
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.validate_response(
        response, excluded_checks=excluded, transport_kwargs={"base_url": base_url}
    )


# Hostile bodies, by hand.

NUMBER_TEXT = st.one_of(
    st.floats().map(repr),
    st.integers().map(str),
    st.sampled_from(["", "NA", "nan", "-inf", "1e999", "1" + "0" * 400, "0x1p3", "1_000", " 1 "]),
)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    """Rows of random widths and cells (numbers, missing, text, quoted separators and line ends,
    very long), joined by any line ends, maybe after a BOM, bad UTF-8 or pyarrow-sized padding."""
    mark = canary()
    cell = st.one_of(
        NUMBER_TEXT,
        st.just(mark),
        st.text(max_size=8).map(lambda t: f"{mark}{t}"),
        st.sampled_from([f'"{mark},\n"', '"1.5"', '""', '"', f'"{mark}""x"', "\x00"]),
        st.integers(1000, 100_000).map(lambda n: mark + "9" * n),
    )
    separator = draw(st.sampled_from([",", ",", ",", ",", ",", ";", "\t", ", "]))
    valid = st.lists(
        st.one_of(st.floats(-10, 10).map(repr), st.sampled_from(["", "NA", "8.76543219"])),
        min_size=4,
        max_size=4,
    )
    hostile = st.lists(cell, min_size=0, max_size=6)
    rows = draw(st.lists(st.one_of(valid, valid, hostile).map(separator.join), max_size=8))
    line_ends = st.sampled_from(["\n", "\r\n", "\r", "\n\n"])
    text = "".join(row + draw(line_ends) for row in rows)
    body = text.encode()
    if draw(st.booleans()):
        body = body.rstrip(b"\r\n")
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + body[at:]
    if draw(st.booleans()):
        body = formats.UTF8_BOM + body
    if draw(st.booleans()):
        row = b"5.1,3.5,1.4,0.2\n"
        body = row * (formats.PYARROW_MIN_BYTES // len(row) + draw(st.integers(1, 3))) + body
    return body


NPY_DTYPES = ["<f8", ">f4", "<f2", "<i8", "|u1", "|b1", "<c16", "<U12", "|S12", "<M8[s]", "|V4"]


@st.composite
def npy_bodies(draw: st.DrawFn) -> bytes:
    """Arrays of random dtypes (structured and object too) and shapes, in either order, saved as
    .npy and then maybe truncated or with bytes of the header changed."""
    mark = canary()
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    kind = draw(st.sampled_from(["plain", "text", "structured", "object"]))
    if kind == "plain":
        array = np.zeros(shape, dtype=draw(st.sampled_from(NPY_DTYPES)))
        if array.dtype.kind == "f":
            with np.errstate(over="ignore"):
                array[...] = draw(st.sampled_from([0.0, 8.76543219, math.inf, math.nan, 1e300]))
    elif kind == "text":
        array = np.full(shape, mark)
    elif kind == "structured":
        fields = draw(st.lists(st.sampled_from([*FOUR_COLUMNS, mark]), min_size=1, max_size=5))
        array = np.zeros(shape, dtype=[(name, "<f8") for name in dict.fromkeys(fields)])
    else:
        array = np.full(shape, mark, dtype=object)
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=kind == "object")
    body = buffer.getvalue()
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "header", "length"]))
    if mutation == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif mutation == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    elif mutation == "header":
        header = draw(
            st.sampled_from(
                [
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 4), }",
                    "{'descr': '<f8', 'fortran_order': True, 'shape': (99999999, 4), }",
                    "{'descr': 'O', 'fortran_order': False, 'shape': (1,), }",
                    f"{{'descr': '{mark}', 'fortran_order': False, 'shape': (1,), }}",
                    "{'descr': '<f8', 'shape': (1, 4), }",
                    "__import__('os').system('true')",
                    "{'descr': [('a', '<f8', (2**40,))], 'fortran_order': False, 'shape': (1,), }",
                ]
            )
        ).encode()
        header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
        body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 64
    elif mutation == "length":
        body = body[:8] + struct.pack("<H", draw(st.integers(0, 65535))) + body[10:]
    return body


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """JSON documents and JSON lines of any shape: the shapes the server reads with wrong values,
    deep nesting, huge numbers, unknown keys; maybe cut short or with bad UTF-8."""
    mark = canary()
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
        st.just(mark),
        st.text(max_size=6).map(lambda t: mark + t),
    )
    value = st.recursive(
        scalar,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(
                st.sampled_from([*FOUR_COLUMNS, "features", "instances", mark]),
                children,
                max_size=4,
            ),
        ),
        max_leaves=20,
    )
    shaped = st.one_of(
        value,
        st.lists(st.lists(scalar, min_size=4, max_size=4), min_size=1, max_size=4),
        st.lists(st.lists(st.floats(-10, 10), min_size=4, max_size=4), min_size=1, max_size=4),
        st.fixed_dictionaries({"instances": st.lists(value, max_size=4)}),
        st.fixed_dictionaries({"features": st.lists(scalar, max_size=6)}),
        st.fixed_dictionaries(dict.fromkeys(FOUR_COLUMNS, scalar)),
    )
    texts = [json.dumps(draw(shaped)) for _ in range(draw(st.integers(1, 4)))]
    special = draw(
        st.sampled_from(
            [
                None,
                None,
                "[" * 100_000 + "]" * 100_000,
                "[" * 2000 + "1" + "]" * 2000,
                '{"a":' * 5000 + "1" + "}" * 5000,
                f"[[1{'0' * 400}, 2, 3, 4]]",
                "[[1e999, 2, 3, 4]]",
                "[[NaN, Infinity, -Infinity, 1]]",
                f'["{mark}\\ud800", 1, 2, 3]',
            ]
        )
    )
    if special is not None:
        texts.append(special)
    body = draw(st.sampled_from(["\n", "\r\n", " ", ""])).join(texts).encode()
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\x93NUMPY", b"\x00"])) + body[at:]
    return body


def content_types(bare: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            bare,
            bare.upper(),
            f"{bare}; charset=utf-8",
            f"{bare}; charset=latin-1",
            f"{bare};charset=UTF-8;header=present",
            f"{bare}; header=absent",
            f"{bare};;",
            f'{bare}; x="a;b"',
        ]
    )


ACCEPTS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            *formats.MEDIA_TYPES,
            "*/*",
            "text/*",
            "application/*",
            "application/json;verbose",
            "text/csv;verbose=true",
            "text/csv;q=0, application/json",
            "image/png, */*;q=0.1",
            "application/x-npy;q=0.5, text/csv;q=0.4",
            "text/csv;charset=utf-8",
            "application/jsonl",
            "image/png",
            "*/*;q=0",
            ";;,,",
        ]
    ),
    st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
)


def headers_of(content_type: str | None, accept: str | None) -> dict[str, str]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return headers


@settings(FUZZ, max_examples=600)
@given(
    body=csv_bodies(),
    content_type=st.one_of(st.none(), content_types(formats.CSV)),
    accept=ACCEPTS,
)
def test_hostile_csv_bodies_get_a_prediction_or_a_json_4xx(
    server: Server, body: bytes, content_type: str | None, accept: str | None
) -> None:
    send(server, "csv", body, headers_of(content_type, accept))


@settings(FUZZ, max_examples=600)
@given(body=npy_bodies(), content_type=content_types(formats.NPY), accept=ACCEPTS)
def test_hostile_npy_bodies_get_a_prediction_or_a_json_4xx(
    server: Server, body: bytes, content_type: str, accept: str | None
) -> None:
    send(server, "npy", body, headers_of(content_type, accept))


@settings(FUZZ, max_examples=600)
@given(
    body=json_bodies(),
    content_type=st.one_of(
        content_types(formats.JSON),
        content_types(formats.JSON_LINES),
        st.sampled_from(list(formats.ALIASES)),
    ),
    accept=ACCEPTS,
)
def test_hostile_json_bodies_get_a_prediction_or_a_json_4xx(
    server: Server, body: bytes, content_type: str, accept: str | None
) -> None:
    send(server, "json", body, headers_of(content_type, accept))


@settings(FUZZ, max_examples=300)
@given(
    body=st.one_of(csv_bodies(), npy_bodies(), json_bodies()),
    content_type=st.one_of(
        st.sampled_from(
            ["", "*/*", "text/plain", "application/octet-stream", "multipart/form-data"]
        ),
        st.sampled_from(formats.MEDIA_TYPES),
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
    ),
    accept=ACCEPTS,
)
def test_any_body_under_any_content_type_gets_a_prediction_or_a_json_4xx(
    server: Server, body: bytes, content_type: str, accept: str | None
) -> None:
    send(server, "mixed", body, headers_of(content_type, accept))


def test_after_the_fuzz_ping_answers_and_no_canary_reached_the_output(server: Server) -> None:
    assert server.request("GET", "/ping")[0] == 200
    assert sum(tally.values()) > 0, "run with the fuzz tests above"
    assert CANARY not in server.output
    assert "8.76543219" not in server.output
