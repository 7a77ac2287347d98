"""Properties of the decoders, the encoders and content negotiation, for any input (hypothesis).

Derandomized (the same examples every run, so a failure reproduces; hypothesis prints the
falsifying example) and bounded by `max_examples`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc import formats
from byoc.errors import InputError

FOUR = formats.Columns(("a", "b", "c", "d"))
ONE = formats.Columns(("x",))
MIXED = formats.Columns(("colour", "size", "shape"), strings=frozenset({0, 2}))
CONTENT_TYPES = st.sampled_from(formats.MEDIA_TYPES)

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUND_TRIPS = settings(FUZZ, max_examples=300)

# Bytes that mean something to one of the decoders, so that random bodies reach past the first
# check of each: separators, quotes, line ends, missing-value and number spellings, JSON and NPY
# syntax, a BOM, invalid UTF-8.
TOKENS = st.sampled_from(
    [
        b",", b'"', b"\n", b"\r", b"\r\n", b" ", b"NA", b"", b"nan", b"inf", b"-", b"1e999",
        b"0", b"1.5", b"-2", b"1e-310", b"9" * 400, b"[", b"]", b"{", b"}", b":", b"null",
        b'"features"', b'"instances"', b'"a"', b"true", formats.UTF8_BOM, b"\xff", b"\xc3",
        b"\x00", b"\x93NUMPY", b"\x01\x00", b"{'descr': '<f8', 'fortran_order': False, ",
        b"'shape': (1, 4), }", b"|O", b"<U3",
    ]
)  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=200),
    st.lists(TOKENS, max_size=40).map(b"".join),
    st.lists(st.lists(TOKENS, max_size=6).map(b"".join), min_size=1, max_size=8).map(b"\n".join),
)


def big(body: bytes) -> bytes:
    """`body` after enough valid rows that pyarrow, not Python, parses a CSV body."""
    row = b"5.1,3.5,1.4,0.2\n"
    return row * (formats.PYARROW_MIN_BYTES // len(row) + 1) + body


@FUZZ
@given(
    body=BODIES,
    padded=st.booleans(),
    content_type=CONTENT_TYPES,
    columns=st.sampled_from([FOUR, ONE, MIXED]),
)
def test_decode_returns_rows_or_raises_input_error(
    body: bytes, padded: bool, content_type: str, columns: formats.Columns
) -> None:
    if padded:
        body = big(body)
    try:
        rows = formats.decode(body, content_type, columns)
    except InputError:
        return
    assert isinstance(rows, np.ndarray)
    assert rows.ndim == 2
    assert rows.shape[0] >= 1
    assert rows.shape[1] == columns.width
    assert rows.dtype == object if columns.strings else rows.dtype.kind == "f"


@FUZZ
@given(
    array=st.integers(1, 3).flatmap(
        lambda ndim: st.tuples(*[st.integers(0, 3)] * ndim).flatmap(
            lambda shape: st.sampled_from(
                ["<f8", ">f4", "<i2", "|u1", "|b1", "<c16", "<U2", "|S2"]
            ).map(lambda dtype: np.zeros(shape, dtype=dtype))
        )
    ),
    fortran=st.booleans(),
    cut=st.integers(0, 200),
    columns=st.sampled_from([FOUR, ONE, MIXED]),
)
def test_decode_of_any_npy_array_or_its_truncation_returns_rows_or_raises_input_error(
    array: np.ndarray, fortran: bool, cut: int, columns: formats.Columns
) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(array) if fortran else array, allow_pickle=False)
    for body in (buffer.getvalue(), buffer.getvalue()[:cut]):
        try:
            rows = formats.decode(body, formats.NPY, columns)
        except InputError:
            continue
        assert rows.ndim == 2
        assert rows.shape[1] == columns.width


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(-(2**53), 2**53).map(float),
)
MATRICES = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(CELLS, min_size=width, max_size=width), min_size=1, max_size=6)
)


def same_floats(actual: np.ndarray, expected: list[list[float]]) -> bool:
    with np.errstate(over="ignore"):  # beyond float32's range is infinity, as in pyarrow's path
        wanted = np.array(expected, dtype=actual.dtype)
    return actual.shape == wanted.shape and np.array_equal(actual, wanted, equal_nan=True)


@ROUND_TRIPS
@given(rows=MATRICES, padded=st.booleans())
def test_float_rows_round_trip_through_csv(rows: list[list[float]], padded: bool) -> None:
    columns = formats.Columns(tuple(f"f{i}" for i in range(len(rows[0]))))
    body = formats.encode(rows, formats.CSV, batch=False)
    if padded:
        padding = b"0," * (len(rows[0]) - 1) + b"0\n"
        body = padding * (formats.PYARROW_MIN_BYTES // len(padding) + 1) + body
    decoded = formats.decode(body, formats.CSV, columns)
    assert same_floats(decoded[-len(rows) :], rows)


@ROUND_TRIPS
@given(rows=MATRICES, content_type=st.sampled_from([formats.JSON, formats.JSON_LINES]))
def test_float_rows_round_trip_through_json(rows: list[list[float]], content_type: str) -> None:
    columns = formats.Columns(tuple(f"f{i}" for i in range(len(rows[0]))))
    if content_type == formats.JSON:
        body = json.dumps([[v if math.isfinite(v) else None for v in r] for r in rows]).encode()
    else:
        body = formats.encode(rows, formats.JSON_LINES, batch=False)
    expected = [[v if math.isfinite(v) else math.nan for v in r] for r in rows]
    assert same_floats(formats.decode(body, content_type, columns), expected)


@ROUND_TRIPS
@given(rows=MATRICES, dtype=st.sampled_from([np.float64, np.float32]))
def test_float_rows_round_trip_through_npy(rows: list[list[float]], dtype: type) -> None:
    columns = formats.Columns(tuple(f"f{i}" for i in range(len(rows[0]))))
    with np.errstate(over="ignore"):
        array = np.array(rows, dtype=dtype)
    decoded = formats.decode(formats.encode(array, formats.NPY, batch=False), formats.NPY, columns)
    assert np.array_equal(decoded, array.astype(np.float64), equal_nan=True)


LABELS = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
NUMBERS = st.one_of(st.floats(), st.integers(-(2**62), 2**62))
WIDTHS = st.integers(1, 4)


@st.composite
def records(draw: st.DrawFn) -> list[Any]:
    """What an output_fn answers: one record per row, every record of one shape."""
    count = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["label", "number", "list", "dict"]))
    if kind == "label":
        return draw(st.lists(st.one_of(LABELS, st.none()), min_size=count, max_size=count))
    if kind == "number":
        return draw(st.lists(st.one_of(NUMBERS, st.none()), min_size=count, max_size=count))
    width = draw(WIDTHS)
    row = st.lists(st.floats(), min_size=width, max_size=width)
    if kind == "list":
        return draw(st.lists(row, min_size=count, max_size=count))
    classes = draw(st.lists(LABELS, min_size=width, max_size=width))
    record = st.fixed_dictionaries(
        {
            "predicted_label": st.sampled_from(classes),
            "probability": st.floats(0, 1),
            "probabilities": row,
            "labels": st.just(classes),
        }
    )
    return draw(st.lists(record, min_size=count, max_size=count))


def plain(value: Any) -> Any:
    """What JSON makes of a record: non-finite floats null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def csv_cells(record: Any) -> list[str]:
    """The cells a record is written as: text as it is, numbers as their repr, None empty, a list
    inside a dict as one JSON cell."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return json.dumps(plain(value))
        return repr(value)

    if isinstance(record, dict):
        return [cell(v) for v in record.values()]
    if isinstance(record, list):
        return [cell(v) for v in record]
    return [cell(record)]


@ROUND_TRIPS
@given(records=records(), batch=st.booleans())
def test_csv_output_parses_back_to_the_records(records: list[Any], batch: bool) -> None:
    body = formats.encode(records, formats.CSV, batch).decode()
    assert body.endswith("\n") != batch
    parsed = list(csv.reader(io.StringIO(body, newline="")))
    # An empty label is an empty line, which the csv module reads as no cells at all.
    assert [row or [""] for row in parsed] == [csv_cells(r) for r in records]


@ROUND_TRIPS
@given(records=records(), batch=st.booleans())
def test_json_output_parses_back_to_the_records(records: list[Any], batch: bool) -> None:
    body = formats.encode(records, formats.JSON, batch).decode()
    if batch:
        assert [json.loads(line) for line in body.split("\n")] == plain(records)
    else:
        assert json.loads(body) == {"predictions": plain(records)}


@ROUND_TRIPS
@given(records=records(), batch=st.booleans())
def test_json_lines_output_parses_back_to_the_records(records: list[Any], batch: bool) -> None:
    body = formats.encode(records, formats.JSON_LINES, batch).decode()
    lines = body.split("\n")
    if not batch:
        assert lines.pop() == ""
    assert [json.loads(line) for line in lines] == plain(records)


def npy_value(value: Any) -> Any:
    """What .npy makes of a value: None is NaN among numbers, empty among text; numpy drops the
    trailing NULs of text."""
    if isinstance(value, str):
        return value.rstrip("\0")
    if isinstance(value, list):
        return [npy_value(v) for v in value]
    return value


@ROUND_TRIPS
@given(records=records())
def test_npy_output_loads_back_to_the_records_without_pickle(records: list[Any]) -> None:
    body = formats.encode(records, formats.NPY, batch=False)
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert len(array) == len(records)
    if isinstance(records[0], dict):
        for key in records[0]:
            loaded = array[key].tolist()
            assert str(loaded) == str([npy_value(r[key]) for r in records])
        return
    texts = any(isinstance(r, str) for r in records)
    missing = "" if texts or all(r is None for r in records) else math.nan
    expected = [npy_value(missing if r is None else r) for r in records]
    if array.dtype.kind == "f":
        assert np.array_equal(array, np.array(expected, dtype=np.float64), equal_nan=True)
    else:
        assert array.tolist() == expected


ACCEPT_ITEMS = st.one_of(
    st.sampled_from(
        [*formats.MEDIA_TYPES, *formats.ALIASES, "*/*", "text/*", "application/*", "image/png"]
    ),
    st.text(max_size=20),
)
PARAMETERS = st.sampled_from(
    ["", ";q=0", ";q=0.5", ";q=1.0", ";q=x", ";verbose", ";verbose=0", ";"]
)


@FUZZ
@given(
    accept=st.one_of(
        st.text(max_size=60),
        st.lists(st.tuples(ACCEPT_ITEMS, PARAMETERS).map("".join), max_size=5).map(", ".join),
    ),
    default=st.sampled_from(formats.MEDIA_TYPES),
)
def test_negotiation_never_raises(accept: str, default: str) -> None:
    formats.media_type(accept)
    negotiated = formats.negotiate(accept, default)
    assert negotiated is None or negotiated.media_type in formats.MEDIA_TYPES
