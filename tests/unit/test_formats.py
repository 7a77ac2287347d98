"""Media types, content negotiation, request bodies to rows and output records to bodies."""

from __future__ import annotations

import csv
import io
import json
import math
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from byoc import formats
from byoc.errors import InputError

PROGRAM_DIR = Path(formats.__file__).parent.parent
FOUR = formats.Columns(("sepal_length", "sepal_width", "petal_length", "petal_width"))
ONE = formats.Columns(("x",))
MIXED = formats.Columns(("colour", "size", "shape"), strings=frozenset({0, 2}))
ROW = b"5.1,3.5,1.4,0.2\n"


def big(body: bytes) -> bytes:
    """`body` after enough rows that pyarrow parses it."""
    padding = ROW * (formats.PYARROW_MIN_BYTES // len(ROW) + 1)
    assert len(padding) >= formats.PYARROW_MIN_BYTES
    return padding + body


PADDING_ROWS = len(big(b"").splitlines())


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_with_header(header: str, length: int | None = None) -> bytes:
    """An .npy body of version 1.0 with this header, padded as numpy pads it, and a row of data.

    `length` replaces the header's true length in the preamble.
    """
    text = header.encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    size = struct.pack("<H", len(text) if length is None else length)
    return b"\x93NUMPY\x01\x00" + size + text + bytes(32)


def npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, array)
    return buffer.getvalue()


def load(body: bytes) -> np.ndarray:
    return np.load(io.BytesIO(body), allow_pickle=False)


def same(actual: np.ndarray, expected: list[list[Any]]) -> bool:
    """Equal cell by cell, NaN equal to NaN, and of the same Python types in object arrays."""
    rows = actual.tolist()
    if len(rows) != len(expected):
        return False
    for row, wanted in zip(rows, expected, strict=True):
        if len(row) != len(wanted):
            return False
        for cell, value in zip(row, wanted, strict=True):
            if type(cell) is not type(value):
                return False
            nan = isinstance(value, float) and math.isnan(value)
            if not (nan and math.isnan(cell)) and cell != value:
                return False
    return True


def decode_error(body: bytes, content_type: str, columns: formats.Columns) -> str:
    with pytest.raises(formats.DecodeError) as caught:
        formats.decode(body, content_type, columns)
    return str(caught.value)


# Media types and negotiation.


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=UTF-8", "text/csv"),
        (" application/json ;q=1", "application/json"),
        ("application/x-jsonlines", "application/jsonlines"),
        ("application/jsonl", "application/jsonlines"),
        ("", ""),
        (None, ""),
    ],
)
def test_media_type_is_bare_and_lower_case(header: str | None, expected: str) -> None:
    assert formats.media_type(header) == expected


@pytest.mark.parametrize(
    ("accept", "default", "expected"),
    [
        (None, "text/csv", "text/csv"),
        ("", "application/json", "application/json"),
        ("*/*", "application/json", "application/json"),
        ("*/*", "application/x-npy", "application/x-npy"),
        ("application/*", "text/csv", "application/json"),
        ("application/*", "application/x-npy", "application/x-npy"),
        ("text/*", "application/json", "text/csv"),
        ("text/html, */*;q=0.1", "text/csv", "text/csv"),
        ("text/html, application/*;q=0.5", "text/csv", "application/json"),
        ("application/jsonlines;q=0.4, application/json;q=0.9", "text/csv", "application/json"),
        ("application/json;q=0.2, application/x-npy;q=0.3", "text/csv", "application/x-npy"),
        ("text/csv;q=abc, application/json", "text/csv", "application/json"),
        ("Application/JSON", "text/csv", "application/json"),
        ("application/x-jsonlines", "text/csv", "application/jsonlines"),
        ("application/jsonl;q=0.8, text/html", "text/csv", "application/jsonlines"),
        ("text/csv; charset=utf-8", "application/json", "text/csv"),
        ("application/json, text/csv", "text/csv", "application/json"),
        ("text/csv, application/json", "application/json", "text/csv"),
        ("*/*, application/json", "text/csv", "application/json"),
        ("*/*;q=0.5, text/csv;q=0.4", "application/json", "application/json"),
        ("text/*, text/csv;q=0", "text/csv", None),
        ("*/*, text/csv;q=0", "text/csv", "application/json"),
        ("application/*;q=0, */*", "application/json", "text/csv"),
        ("text/html", "text/csv", None),
        ("text/csv;q=abc", "text/csv", None),
        ("*/*;q=0", "text/csv", None),
        ("image/*", "text/csv", None),
        ("*/json", "application/json", None),
    ],
)
def test_negotiate_picks_the_most_preferred_supported_type(
    accept: str | None, default: str, expected: str | None
) -> None:
    negotiated = formats.negotiate(accept, default)
    assert (negotiated and negotiated.media_type) == expected
    assert negotiated is None or negotiated.media_type in formats.MEDIA_TYPES


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;verbose", formats.Negotiated("application/json", verbose=True)),
        ("application/json; verbose", formats.Negotiated("application/json", verbose=True)),
        ("text/csv; verbose", formats.Negotiated("text/csv", verbose=True)),
        ("application/json;verbose;q=0.9", formats.Negotiated("application/json", verbose=True)),
        ("application/json;q=0.9;verbose", formats.Negotiated("application/json", verbose=True)),
        ("application/json;verbose=true", formats.Negotiated("application/json", verbose=True)),
        ("application/json;verbose=false", formats.Negotiated("application/json", verbose=False)),
        ("application/json", formats.Negotiated("application/json", verbose=False)),
        ('application/json;x="a;verbose"', formats.Negotiated("application/json", verbose=False)),
        ("application/*;verbose", formats.Negotiated("application/json", verbose=True)),
        # Only the chosen item counts.
        ("text/csv, application/json;verbose", formats.Negotiated("text/csv", verbose=False)),
        (
            "application/json;verbose;q=0.5, text/csv;q=0.9",
            formats.Negotiated("text/csv", verbose=False),
        ),
        (
            "text/csv;q=0.5, application/json;verbose",
            formats.Negotiated("application/json", verbose=True),
        ),
        (None, formats.Negotiated("text/csv", verbose=False)),
    ],
)
def test_negotiate_reports_a_verbose_parameter_of_the_chosen_item(
    accept: str | None, expected: formats.Negotiated
) -> None:
    assert formats.negotiate(accept, formats.CSV) == expected


def test_negotiate_is_cached() -> None:
    first = formats.negotiate("application/json;verbose, text/csv;q=0.5", formats.CSV)
    assert formats.negotiate("application/json;verbose, text/csv;q=0.5", formats.CSV) is first
    assert formats.negotiate.cache_info().hits >= 1


# Decoding rows of numbers.


def test_decode_error_is_the_one_input_error() -> None:
    assert issubclass(formats.DecodeError, InputError)


def test_columns_width_is_the_number_of_names() -> None:
    assert FOUR.width == 4
    assert MIXED.width == 3


@pytest.mark.parametrize("body", [ROW * 2, ROW + ROW.strip(), ROW.replace(b"\n", b"\r\n") * 2])
def test_a_small_csv_body_is_rows_of_floats(body: bytes) -> None:
    rows = formats.decode(body, formats.CSV, FOUR)
    assert rows.dtype == np.float64
    assert rows.tolist() == [[5.1, 3.5, 1.4, 0.2]] * 2


def test_a_big_csv_body_is_rows_of_floats() -> None:
    body = big(b"1,2,3,4\n")
    rows = formats.decode(body, formats.CSV, FOUR)
    # float32, what the models read: no float64 copy of a big body.
    assert rows.dtype == np.float32
    assert rows.flags.c_contiguous
    assert rows.shape == (PADDING_ROWS + 1, 4)
    assert rows[0].tolist() == np.float32([5.1, 3.5, 1.4, 0.2]).tolist()
    assert rows[-1].tolist() == [1.0, 2.0, 3.0, 4.0]


MISSING_CSV = b"1,,NA,4\n,NA,,\nnan,NaN,inf,-1\n"
MISSING_ROWS = [
    [1.0, math.nan, math.nan, 4.0],
    [math.nan] * 4,
    [math.nan, math.nan, math.inf, -1.0],
]


def test_empty_and_na_cells_of_a_small_csv_body_are_nan() -> None:
    rows = formats.decode(MISSING_CSV, formats.CSV, FOUR)
    assert rows.dtype == np.float64
    assert same(rows, MISSING_ROWS)


def test_empty_and_na_cells_of_a_big_csv_body_are_nan() -> None:
    rows = formats.decode(big(MISSING_CSV), formats.CSV, FOUR)
    assert rows.dtype == np.float64
    assert same(rows[-3:], MISSING_ROWS)
    assert not np.isnan(rows[:-3]).any()


def test_pyarrow_reads_missing_cells_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big body with missing cells stays on the fast path, not the exact pass."""

    def exact_pass(body: bytes, columns: formats.Columns) -> np.ndarray:
        raise AssertionError("the exact pass ran")

    monkeypatch.setattr(formats, "_csv_exact", exact_pass)
    rows = formats.decode(big(b"1,,NA,4\n" * 3000), formats.CSV, FOUR)
    assert same(rows[-1:], [[1.0, math.nan, math.nan, 4.0]])
    assert np.isnan(rows).sum() == 2 * 3000


@pytest.mark.parametrize("padding", [b"", b"1.5\n" * (formats.PYARROW_MIN_BYTES // 4)])
def test_an_empty_line_is_a_missing_value_of_a_one_feature_model(padding: bytes) -> None:
    rows = formats.decode(padding + b"1\n\n2\n", formats.CSV, ONE)
    assert same(rows[-3:], [[1.0], [math.nan], [2.0]])
    assert rows.shape == (len(padding) // 4 + 3, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1,2,3,4\n1,2,3\n", "row 2: expected 4 features, got 3"),
        (b"1,2,3,4\n1,2,3,4,5\n", "row 2: expected 4 features, got 5"),
        (b"1,2,3\n1,2,3\n", "row 1: expected 4 features, got 3"),
        (b"1,2,3,4\n\n1,2,3,4\n", "row 2: expected 4 features, got 0"),
        (b"1,2,3,4\n1,2,abc,4\n", 'row 2: "abc" is not a number'),
        (b"1,2,3,4\n1,2, NA ,4\n", 'row 2: " NA " is not a number'),
        (
            b"sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n",
            f'row 1: "sepal_length" is not a number{formats.HEADER_HINT}',
        ),
        (b"", "empty body: send at least one CSV row"),
        (b"\xff\xfe,1\n", "the body is not UTF-8 text"),
    ],
)
def test_a_bad_small_csv_body_names_the_row(body: bytes, message: str) -> None:
    assert decode_error(body, formats.CSV, FOUR).startswith(message)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"1,2,3\n", "expected 4 features, got 3"),
        (b"1,2,3,4,5\n", "expected 4 features, got 5"),
        (b"\n1,2,3,4\n", "expected 4 features, got 0"),
        (b"1,2,abc,4\n", '"abc" is not a number'),
    ],
)
def test_a_bad_big_csv_body_names_the_row(tail: bytes, message: str) -> None:
    assert decode_error(big(tail), formats.CSV, FOUR) == f"row {PADDING_ROWS + 1}: {message}"


def test_a_big_csv_body_with_a_header_row_gets_the_hint() -> None:
    body = b"a,b,c,d\n" + big(b"")
    assert decode_error(body, formats.CSV, FOUR) == (
        f'row 1: "a" is not a number{formats.HEADER_HINT}'
    )


def test_a_big_csv_body_with_a_row_of_missing_cells_only_is_read() -> None:
    rows = formats.decode(big(b",,,\n1,2,3,4\n"), formats.CSV, FOUR)
    assert same(rows[-2:], [[math.nan] * 4, [1.0, 2.0, 3.0, 4.0]])


def test_a_big_csv_body_is_decoded_without_importing_pandas() -> None:
    program = (
        "import sys; from byoc import formats; "
        "columns = formats.Columns(('a', 'b', 'c', 'd')); "
        "formats.decode(b'5.1,3.5,1.4,0.2\\n' * 5000, formats.CSV, columns); "
        "formats.decode(b'5.1,,NA,0.2\\n' * 5000, formats.CSV, columns); "
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    subprocess.run([sys.executable, "-c", program], cwd=PROGRAM_DIR, check=True)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[[1, 2, 3, 4], [5, null, 7, null]]", formats.JSON),
        (b'{"instances": [[1, 2, 3, 4], [5, null, 7, null]]}', formats.JSON),
        (b'{"instances": [{"features": [1, 2, 3, 4]}, {"features": [5, null, 7, null]}]}', "j"),
        (b"[1, 2, 3, 4]\n[5, null, 7, null]\n", formats.JSON_LINES),
        (b"[1, 2, 3, 4]\n[5, null, 7, null]", formats.JSON),
        (b'{"features": [1, 2, 3, 4]}\n{"features": [5, null, 7, null]}\n', formats.JSON_LINES),
        (b'[[1, 2, 3, 4], [5, "NA", "7", ""]]', formats.JSON),
    ],
)
def test_json_rows_with_null_are_nan(body: bytes, content_type: str) -> None:
    rows = formats.decode(body, formats.JSON if content_type == "j" else content_type, FOUR)
    assert rows.dtype == np.float64
    assert same(rows, [[1.0, 2.0, 3.0, 4.0], [5.0, math.nan, 7.0, math.nan]])


def test_a_flat_json_list_is_one_row() -> None:
    assert formats.decode(b"[1, 2, 3, 4]", formats.JSON, FOUR).tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b'{"instances": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, '
            b'"petal_width": 4}, {"petal_width": 8, "sepal_length": 5}]}',
            formats.JSON,
        ),
        (
            b'[{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4}, '
            b'{"petal_width": 8, "sepal_length": 5, "sepal_width": null}]',
            formats.JSON,
        ),
        (
            b'{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4}\n'
            b'{"petal_width": 8, "sepal_length": 5}\n',
            formats.JSON_LINES,
        ),
    ],
)
def test_json_rows_keyed_by_feature_name_read_a_missing_key_as_nan(
    body: bytes, content_type: str
) -> None:
    rows = formats.decode(body, content_type, FOUR)
    assert rows.dtype == np.float64
    assert same(rows, [[1.0, 2.0, 3.0, 4.0], [5.0, math.nan, math.nan, 8.0]])


def test_one_json_object_keyed_by_feature_name_is_one_row() -> None:
    rows = formats.decode(b'{"sepal_length": 1, "petal_width": 4}', formats.JSON, FOUR)
    assert same(rows, [[1.0, math.nan, math.nan, 4.0]])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b'[{"sepal_length": 1}, {"sepal_lenght": 1, "colour": 2}]',
            formats.JSON,
            'row 2: unknown keys "sepal_lenght", "colour"; expected keys among '
            '"sepal_length", "sepal_width", "petal_length", "petal_width"',
        ),
        (
            b'{"instance": [[1, 2, 3, 4]]}',
            formats.JSON,
            'row 1: unknown keys "instance"; expected keys among "sepal_length", "sepal_width", '
            '"petal_length", "petal_width"',
        ),
        (b"[[1, 2, 3, 4], [1, 2, 3]]", formats.JSON, "row 2: expected 4 features, got 3"),
        (b'[[1, 2, 3, 4], [1, "x", 3, 4]]', formats.JSON, 'row 2: "x" is not a number'),
        (b"[[1, 2, 3, 4], [1, [2], 3, 4]]", formats.JSON, "row 2: [2] is not a number"),
        (b"[[1, 2, 3, 4], 5]", formats.JSON, "row 2: expected a list of values"),
        (b"[1, 2, 3", formats.JSON, "malformed JSON"),
        (b"[]", formats.JSON, "JSON must be a list of rows"),
        (b'{"instances": 3}', formats.JSON, "JSON must be a list of rows"),
        (b"[1, 2, 3, 4]\n[1, 2, 3]\n", formats.JSON_LINES, "row 2: expected 4 features, got 3"),
        (b"[1, 2, 3, 4]\n[1, 2\n", formats.JSON_LINES, "row 2: malformed JSON"),
        (b"", formats.JSON_LINES, "empty body: send at least one JSON line"),
        (b"[" * 100_000 + b"]" * 100_000, formats.JSON, formats.TOO_DEEP),
        (b"[" * 100_000 + b"]" * 100_000, formats.JSON_LINES, f"row 1: {formats.TOO_DEEP}"),
        (b"[[1" + b"0" * 400 + b", 1, 2, 3]]", formats.JSON, "row 1: a number beyond the range"),
        (
            b'{"instances": [[1, 2, 3, 4], {"features": [1' + b"0" * 400 + b", 1, 2, 3]}]}",
            formats.JSON,
            "row 2: a number beyond the range",
        ),
        (b"[1,2,3,4]\n[1" + b"0" * 400 + b", 1, 2, 3]", formats.JSON_LINES, "row 2: a number"),
    ],
)
def test_a_bad_json_body_names_the_row(body: bytes, content_type: str, message: str) -> None:
    assert decode_error(body, content_type, FOUR).startswith(message)


def test_the_unknown_key_message_shortens_a_long_list_of_names() -> None:
    columns = formats.Columns(tuple(f"f{i}" for i in range(50)))
    message = decode_error(b'[{"g": 1}]', formats.JSON, columns)
    assert message.endswith('"f19", ... (50 in all)')


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1, 2, 3, 4], [5, np.nan, 7, 8]]),
        np.array([[1, 2, 3, 4], [5, np.nan, 7, 8]], dtype=np.float32),
    ],
)
def test_an_npy_body_is_rows_of_floats(array: np.ndarray) -> None:
    rows = formats.decode(npy(array), formats.NPY, FOUR)
    assert rows.dtype == np.float64
    assert same(rows, [[1.0, 2.0, 3.0, 4.0], [5.0, math.nan, 7.0, 8.0]])


def test_a_one_dimensional_npy_body_is_one_row() -> None:
    rows = formats.decode(npy(np.array([1, 2, 3, 4], dtype=np.int32)), formats.NPY, FOUR)
    assert rows.tolist() == [[1.0, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (npy(np.array([[1.0, 2.0, 3.0]])), "row 1: expected 4 features, got 3"),
        (npy(np.array([["1", "2", "3", "4"]])), "the array holds <U1, not numbers"),
        (npy(np.zeros((1, 1, 4))), "the array has 3 dimensions"),
        (npy(np.zeros(0)), "the array of shape (0,) is empty"),
        (npy(np.zeros((0, 4))), "the array of shape (0, 4) is empty"),
        (npy(np.zeros((2, 0))), "the array of shape (2, 0) is empty"),
        (
            npy(np.array([(1.0,)], dtype=[("sepal_length", "<f8")])),
            "the array holds [('sepal_length', '<f8')], not numbers",
        ),
        (pickle.dumps([[1, 2, 3, 4]]), "not a .npy array: it does not start with"),
        (npz(np.zeros((1, 4))), "not a .npy array: it does not start with"),
        (npy_with_header("{'descr': '<f8',", 1), "not a readable .npy array without pickle"),
        (
            npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2**40, 4), }"),
            "not a readable .npy array without pickle",
        ),
        (
            npy_with_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1125899906842624, 4), }"
            ),
            "the .npy header's shape is larger than the body can hold",
        ),
    ],
)
def test_a_bad_npy_body_is_refused(body: bytes, message: str) -> None:
    assert decode_error(body, formats.NPY, FOUR).startswith(message)


def test_an_npy_body_of_objects_is_refused_without_unpickling() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, "a", None, 4]], dtype=object), allow_pickle=True)
    assert decode_error(buffer.getvalue(), formats.NPY, MIXED).startswith(
        "not a readable .npy array without pickle"
    )


# Decoding rows with string columns.

MIXED_ROWS = [["red", 3.0, "round"], ["dark, red", math.nan, None], [None, 2.5, "a"]]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'red,3,round\n"dark, red",,NA\nNA,2.5,a\n', formats.CSV),
        (b'red,3,round\r\n"dark, red",NA,\r\n,2.5,a\r\n', formats.CSV),
        (b'[["red", 3, "round"], ["dark, red", null, null], [null, "2.5", "a"]]', formats.JSON),
        (
            b'{"instances": [{"colour": "red", "size": 3.0, "shape": "round"}, '
            b'{"colour": "dark, red"}, {"size": 2.5, "shape": "a", "colour": null}]}',
            formats.JSON,
        ),
        (
            b'[{"colour": "red", "size": 3.0, "shape": "round"}, {"colour": "dark, red"}, '
            b'{"size": 2.5, "shape": "a"}]',
            formats.JSON,
        ),
        (
            b'{"colour": "red", "size": 3.0, "shape": "round"}\n{"colour": "dark, red"}\n'
            b'{"size": 2.5, "shape": "a"}\n',
            formats.JSON_LINES,
        ),
        (b'["red", 3, "round"]\n["dark, red", null, ""]\n[null, 2.5, "a"]', formats.JSON_LINES),
        (
            b'{"instances": [{"features": ["red", 3, "round"]}, {"features": ["dark, red", '
            b'null, null]}, {"features": [null, 2.5, "a"]}]}',
            formats.JSON,
        ),
        (
            npy(np.array([["red", "3", "round"], ["dark, red", "", "NA"], ["NA", "2.5", "a"]])),
            formats.NPY,
        ),
        (
            npy(
                np.array(
                    [("red", 3.0, "round"), ("dark, red", np.nan, ""), ("", 2.5, "a")],
                    dtype=[("colour", "<U9"), ("size", "<f8"), ("shape", "<U5")],
                )
            ),
            formats.NPY,
        ),
        (
            npy(
                np.array(
                    [(3.0, "red"), (np.nan, "dark, red"), (2.5, "")],
                    dtype=[("size", "<f4"), ("colour", "<U9")],
                )
            ),
            "npy without shape",
        ),
    ],
)
def test_rows_with_string_columns_are_objects(body: bytes, content_type: str) -> None:
    expected = MIXED_ROWS
    if content_type == "npy without shape":
        content_type = formats.NPY
        expected = [[*row[:2], None] for row in MIXED_ROWS]
    rows = formats.decode(body, content_type, MIXED)
    assert rows.dtype == object
    assert rows.shape == (3, 3)
    assert same(rows, expected)


def test_numbers_in_a_string_column_are_read_as_their_text() -> None:
    rows = formats.decode(b'[[1, 2, 3.5], [NaN, 0, "x"]]', formats.JSON, MIXED)
    assert same(rows, [["1", 2.0, "3.5"], [None, 0.0, "x"]])


def test_a_big_csv_body_with_string_columns_is_read() -> None:
    body = b'red,3,round\n"dark, red",,NA\n' * 2000
    assert len(body) >= formats.PYARROW_MIN_BYTES
    rows = formats.decode(body, formats.CSV, MIXED)
    assert rows.shape == (4000, 3)
    assert same(rows[:2], MIXED_ROWS[:2])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"red,3,round\nblue,big,square\n", formats.CSV, 'row 2, column "size": "big"'),
        (
            b"colour,size,shape\nred,3,round\n",
            formats.CSV,
            f'row 1, column "size": "size" is not a number{formats.HEADER_HINT}',
        ),
        (b"red,3,round\nblue,4\n", formats.CSV, "row 2: expected 3 features, got 2"),
        (b"red,3,round\n\n", formats.CSV, "row 2: expected 3 features, got 0"),
        (b'red,3,round\n"blue,4,a\n', formats.CSV, "row 2: expected 3 features, got 1"),
        (b"", formats.CSV, "empty body: send at least one CSV row"),
        (b'[["red", 3, "round"], ["blue", "x", "a"]]', formats.JSON, 'row 2, column "size": "x"'),
        (b'[["red", 3, "round"], [["b"], 3, "a"]]', formats.JSON, 'row 2, column "colour": ["b"]'),
        (b'[["red", 3, "round"], [true, 3, "a"]]', formats.JSON, 'row 2, column "colour": true'),
        (
            b'[{"colour": "red", "sise": 3}]',
            formats.JSON,
            'row 1: unknown keys "sise"; expected keys among "colour", "size", "shape"',
        ),
        (
            b'{"colour": "red"}\n{"color": "blue"}\n',
            formats.JSON_LINES,
            'row 2: unknown keys "color"; expected keys among "colour", "size", "shape"',
        ),
        (
            npy(np.array([("red", 3.0)], dtype=[("colour", "<U3"), ("sise", "<f8")])),
            formats.NPY,
            'row 1: unknown fields "sise"; expected fields among "colour", "size", "shape"',
        ),
        (npy(np.array([["red", "3"]])), formats.NPY, "row 1: expected 3 features, got 2"),
        (npy(np.array([["red", "big", "a"]])), formats.NPY, 'row 1, column "size": "big"'),
        (npy(np.array([[b"red"]])), formats.NPY, "the array holds |S3, not numbers or strings"),
    ],
)
def test_a_bad_body_with_string_columns_names_the_row_and_column(
    body: bytes, content_type: str, message: str
) -> None:
    assert decode_error(body, content_type, MIXED).startswith(message)


# Encoding.

LABELS = ["setosa", "versicolor", "virginica"]
VERBOSE = {
    "predicted_label": "setosa",
    "probability": 0.97,
    "probabilities": [0.97, 0.02, 0.01],
    "labels": LABELS,
}


def test_csv_output_of_plain_labels_is_one_per_line() -> None:
    assert formats.encode(["setosa"], formats.CSV, batch=False) == b"setosa\n"
    assert formats.encode(LABELS, formats.CSV, batch=False) == b"setosa\nversicolor\nvirginica\n"
    assert formats.encode(LABELS, formats.CSV, batch=True) == b"setosa\nversicolor\nvirginica"


def test_csv_output_quotes_labels_that_need_it() -> None:
    records = ["a,b", 'say "hi"', "plain", "two\nlines", "cr\r"]
    body = formats.encode(records, formats.CSV, batch=False)
    assert body.startswith(b'"a,b"\n"say ""hi"""\nplain\n"two\nlines"\n')
    assert [row[0] for row in csv.reader(io.StringIO(body.decode(), newline=""))] == records


def test_numbers_and_lists_are_written_as_csv_rows() -> None:
    assert formats.encode([1.5, [1, 2]], formats.CSV, batch=False) == b"1.5\n1,2\n"


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([1.5, 2.0, 1e-05, 1e20], b"1.5\n2.0\n1e-05\n1e+20\n"),
        ([np.float64(0.1), np.float32(0.97), np.float16(0.5)], b"0.1\n0.97\n0.5\n"),
        ([1, np.int64(2), np.uint8(3)], b"1\n2\n3\n"),
        ([True, np.bool_(False)], b"true\nfalse\n"),
        ([math.nan, np.float32("nan"), math.inf, -math.inf], b"nan\nnan\ninf\n-inf\n"),
        ([[1, 2.5, "a,b"], [np.int32(3), np.float32(0.25), "c"]], b'1,2.5,"a,b"\n3,0.25,c\n'),
        (
            [np.array([0.5, 0.25], dtype=np.float32), np.array([1.0, np.nan])],
            b"0.5,0.25\n1.0,nan\n",
        ),
        (np.array([0.1, 0.2], dtype=np.float32), b"0.1\n0.2\n"),
        (np.array(["a", "b,c"]), b'a\n"b,c"\n'),
        ([None, "x"], b'""\nx\n'),
        ([], b""),
    ],
)
def test_csv_output_of_numbers_is_their_shortest_text(records: Any, expected: bytes) -> None:
    assert formats.encode(records, formats.CSV, batch=False) == expected


def test_csv_output_of_dicts_is_their_values_with_lists_as_json_cells() -> None:
    records = [VERBOSE, {**VERBOSE, "predicted_label": "versi,color"}]
    body = formats.encode(records, formats.CSV, batch=False)
    assert body.splitlines()[0] == (
        b'setosa,0.97,"[0.97, 0.02, 0.01]","[""setosa"", ""versicolor"", ""virginica""]"'
    )
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert len(rows) == 2
    for row, record in zip(rows, records, strict=True):
        assert row[0] == record["predicted_label"]
        assert float(row[1]) == record["probability"]
        assert json.loads(row[2]) == record["probabilities"]
        assert json.loads(row[3]) == record["labels"]


def test_csv_output_of_numpy_dicts_is_plain_text() -> None:
    record = {
        "label": np.str_("setosa"),
        "score": np.float32(0.97),
        "scores": np.array([0.97, np.nan], dtype=np.float32),
        "flag": np.bool_(True),
    }
    body = formats.encode([record], formats.CSV, batch=True)
    assert body == b'setosa,0.97,"[0.97, null]",true'


@pytest.mark.parametrize("batch", [False, True])
def test_json_output_holds_the_records_under_predictions(batch: bool) -> None:
    records = [VERBOSE, {**VERBOSE, "probability": np.float32(0.5)}]
    body = formats.encode(records, formats.JSON, batch=batch)
    if batch:  # one value a line, as batch transform assembles with AssembleWith=Line
        assert not body.endswith(b"\n")
        assert [json.loads(line) for line in body.splitlines()] == [
            VERBOSE,
            {**VERBOSE, "probability": 0.5},
        ]
    else:
        assert json.loads(body) == {"predictions": [VERBOSE, {**VERBOSE, "probability": 0.5}]}


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (LABELS, LABELS),
        ([1, 2.5, True, None], [1, 2.5, True, None]),
        ([np.int64(1), np.float32(0.97), np.float64(0.1), np.bool_(True)], [1, 0.97, 0.1, True]),
        ([math.nan, np.float32("inf"), -math.inf], [None, None, None]),
        ([[0.5, math.nan], np.array([1.0, np.inf])], [[0.5, None], [1.0, None]]),
        ([{"p": np.array([0.25, np.nan], dtype=np.float32)}], [{"p": [0.25, None]}]),
        (np.array([1, 2], dtype=np.int8), [1, 2]),
        ([], []),
    ],
)
@pytest.mark.parametrize("accept", [formats.JSON, formats.JSON_LINES])
def test_json_output_is_valid_json_of_python_values(
    records: Any, expected: list[Any], accept: str
) -> None:
    body = formats.encode(records, accept, batch=False)
    if accept == formats.JSON:
        assert json.loads(body, parse_constant=pytest.fail) == {"predictions": expected}
    else:
        assert body.endswith(b"\n") if expected else body == b""
        assert [json.loads(line, parse_constant=pytest.fail) for line in body.splitlines()] == (
            expected
        )


def test_json_lines_output_ends_every_record_with_a_newline_but_in_batch() -> None:
    assert formats.encode(LABELS, formats.JSON_LINES, batch=False) == (
        b'"setosa"\n"versicolor"\n"virginica"\n'
    )
    assert formats.encode(LABELS, formats.JSON_LINES, batch=True) == (
        b'"setosa"\n"versicolor"\n"virginica"'
    )


@pytest.mark.parametrize(
    ("records", "dtype", "expected"),
    [
        (LABELS, np.dtype("<U10"), LABELS),
        ([1, 2, 3], np.dtype(np.int64), [1, 2, 3]),
        ([0.5, np.float64(0.25), math.nan], np.dtype(np.float64), [0.5, 0.25, math.nan]),
        ([True, False], np.dtype(bool), [True, False]),
        ([1.5, None], np.dtype(np.float64), [1.5, math.nan]),
        (["a", None], np.dtype("<U1"), ["a", ""]),
        ([[0.5, 0.25], [1.0, 0.0]], np.dtype(np.float64), [[0.5, 0.25], [1.0, 0.0]]),
        ([["a", "b"], ["c", None]], np.dtype("<U1"), [["a", "b"], ["c", ""]]),
        (np.array([1.5, 2.5], dtype=np.float32), np.dtype(np.float32), [1.5, 2.5]),
        ([], np.dtype(np.float64), []),
    ],
)
def test_npy_output_of_scalars_and_lists_is_an_array_without_objects(
    records: Any, dtype: np.dtype, expected: list[Any]
) -> None:
    array = load(formats.encode(records, formats.NPY, batch=False))
    assert array.dtype == dtype
    actual = array.tolist()
    assert len(actual) == len(expected)
    assert str(actual) == str(expected)


def test_npy_output_of_dicts_is_a_structured_array() -> None:
    records = [VERBOSE, {**VERBOSE, "predicted_label": "versicolor", "probability": 0.5}]
    array = load(formats.encode(records, formats.NPY, batch=False))
    assert array.dtype == np.dtype(
        [
            ("predicted_label", "<U10"),
            ("probability", "<f8"),
            ("probabilities", "<f8", (3,)),
            ("labels", "<U10", (3,)),
        ]
    )
    assert array.shape == (2,)
    assert array["predicted_label"].tolist() == ["setosa", "versicolor"]
    assert array["probability"].tolist() == [0.97, 0.5]
    assert array["probabilities"].tolist() == [[0.97, 0.02, 0.01]] * 2
    assert array["labels"].tolist() == [LABELS] * 2


def test_npy_output_of_numpy_dicts_keeps_their_types() -> None:
    record = {"label": np.int64(2), "scores": np.array([0.5, 0.25], dtype=np.float32)}
    array = load(formats.encode([record, record], formats.NPY, batch=False))
    assert array.dtype == np.dtype([("label", "<i8"), ("scores", "<f4", (2,))])
    assert array["scores"].tolist() == [[0.5, 0.25]] * 2


def test_records_that_npy_cannot_hold_are_refused_not_pickled() -> None:
    with pytest.raises(TypeError, match=r"cannot be written as \.npy"):
        formats.encode([[1, 2], [3]], formats.NPY, batch=False)
    with pytest.raises(TypeError, match=r"cannot be written as \.npy"):
        formats.encode([{"a": 1}, [1]], formats.NPY, batch=False)


@pytest.mark.parametrize("accept", [formats.CSV, formats.JSON, formats.JSON_LINES])
@pytest.mark.parametrize(
    "records",
    [
        LABELS,
        [np.float32(0.97), np.float64(0.5)],
        [np.array([0.97, 0.03], dtype=np.float32)] * 2,
        [{"label": np.str_("a"), "p": np.float32(0.5), "ps": np.array([0.5, 0.5])}] * 2,
    ],
)
def test_no_output_holds_a_python_repr(records: list[Any], accept: str) -> None:
    body = formats.encode(records, accept, batch=False)
    for repr_text in (b"np.", b"array(", b"dtype", b"float32(", b"'"):
        assert repr_text not in body
    assert b"0.97" in body or b"setosa" in body or b"0.5" in body
    assert b"0.9700000" not in body


@pytest.mark.parametrize("content_type", [formats.CSV, formats.JSON, formats.JSON_LINES])
def test_a_utf8_byte_order_mark_before_the_first_row_is_not_part_of_it(content_type: str) -> None:
    row = b"5.1,3.5,1.4,0.2\n" if content_type == formats.CSV else b"[5.1, 3.5, 1.4, 0.2]\n"
    rows = formats.decode(formats.UTF8_BOM + row, content_type, FOUR)
    assert rows.tolist() == [[5.1, 3.5, 1.4, 0.2]]


HEADER = b"sepal_length,sepal_width,petal_length,petal_width\n"


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (HEADER + ROW * 2, 2),  # split in Python
        (HEADER + ROW * 2000, 2000),  # pyarrow
        (HEADER + b"1,,NA,4\n", 1),  # missing cells: the exact pass
        (b'"sepal\nlength",b,c,d\n' + ROW, 1),  # a quoted line break in the header
    ],
)
def test_a_header_present_is_skipped(body: bytes, rows: int) -> None:
    decoded = formats.decode(body, formats.CSV, FOUR, header=True)
    assert decoded.shape == (rows, 4)
    assert not np.isnan(decoded[:, 0]).any()


def test_a_header_present_skips_the_first_text_column_row_too() -> None:
    body = b"colour,size,shape\nred,1,round\n"
    assert same(formats.decode(body, formats.CSV, MIXED, header=True), [["red", 1.0, "round"]])


def test_rows_after_a_header_are_numbered_as_in_the_body() -> None:
    with pytest.raises(formats.DecodeError, match=r"^row 3: expected 4 features, got 3"):
        formats.decode(HEADER + ROW + b"1,2,3\n", formats.CSV, FOUR, header=True)


@pytest.mark.parametrize("body", [HEADER, b"a,b,c," + b"d" * formats.PYARROW_MIN_BYTES + b"\n"])
def test_a_header_alone_is_an_empty_body(body: bytes) -> None:
    with pytest.raises(formats.DecodeError, match="empty body"):
        formats.decode(body, formats.CSV, FOUR, header=True)


def test_without_header_present_a_header_row_is_a_400_that_says_so() -> None:
    with pytest.raises(
        formats.DecodeError, match=r"row 1: .* \(a header row\? .* header=present\)"
    ):
        formats.decode(HEADER + ROW, formats.CSV, FOUR)


@pytest.mark.parametrize("body", [ROW * 3, big(ROW * 3)])
def test_bare_cr_line_endings_are_line_endings(body: bytes) -> None:
    decoded = formats.decode(body.replace(b"\n", b"\r"), formats.CSV, FOUR)
    assert decoded.tolist() == formats.decode(body, formats.CSV, FOUR).tolist()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, formats.ContentType(formats.CSV)),
        ("text/csv; charset=UTF-8", formats.ContentType(formats.CSV)),
        ("text/csv; charset=us-ascii", formats.ContentType(formats.CSV)),
        ("text/csv; charset=latin1", formats.ContentType(formats.CSV, "iso8859-1")),
        ("text/csv; charset=Windows-1252", formats.ContentType(formats.CSV, "cp1252")),
        ('text/csv; header="Present"', formats.ContentType(formats.CSV, header=True)),
        ("application/json; header=yes", formats.ContentType(formats.JSON)),
        ("application/x-npy; charset=klingon", formats.ContentType(formats.NPY)),
        (
            "application/x-jsonlines;charset=utf-16",
            formats.ContentType(formats.JSON_LINES, "utf-16"),
        ),
    ],
)
def test_content_type_parameters(header: str | None, expected: formats.ContentType) -> None:
    assert formats.content_type(header) == expected


@pytest.mark.parametrize(
    "header", ["text/csv; charset=base64", "text/csv; charset=nope", "text/csv; header=1", "x/y"]
)
def test_an_unreadable_content_type_is_unsupported(header: str) -> None:
    with pytest.raises(formats.UnsupportedType):
        formats.content_type(header)


@pytest.mark.parametrize("charset", ["utf-16", "utf-16-le", "cp1252", "iso8859-1", "utf-8-sig"])
@pytest.mark.parametrize("content_type", [formats.CSV, formats.JSON, formats.JSON_LINES])
def test_text_in_another_charset_is_transcoded(charset: str, content_type: str) -> None:
    text = "5.1,3.5,1.4,0.2\n" if content_type == formats.CSV else "[5.1, 3.5, 1.4, 0.2]\n"
    rows = formats.decode(text.encode(charset), content_type, FOUR, charset=charset)
    assert rows.tolist() == [[5.1, 3.5, 1.4, 0.2]]


def test_text_in_a_charset_reaches_text_columns_intact() -> None:
    body = "café,1,ronde\n".encode("cp1252")
    rows = formats.decode(body, formats.CSV, MIXED, charset="cp1252")
    assert same(rows, [["café", 1.0, "ronde"]])


def test_a_value_quoted_in_a_message_is_cut() -> None:
    with pytest.raises(formats.DecodeError) as caught:
        formats.decode(b"x" * 100_000 + b",1,2,3\n", formats.CSV, FOUR)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2, 3, 4], [5\n6, 7, 8]\n", "row 1: malformed JSON: Extra data"),
        (b"[1, 2, 3, 4]\n[[1], 2, 3, 4]\n", "row 2: [1] is not a number"),
        (b"[1, 2, 3, 4]\n[1, 2, 3]\n", "row 2: expected 4 features, got 3"),
    ],
)
def test_json_lines_read_at_once_still_name_the_line_at_fault(body: bytes, message: str) -> None:
    assert decode_error(body, formats.JSON_LINES, FOUR).startswith(message)


def test_json_lines_read_at_once_equal_those_read_line_by_line() -> None:
    body = b'[1, 2.5, null, 4]\n["5", true, 1e3, -0.0]\r\n'
    mixed = body + b'{"features": [1, 2, 3, 4]}\n'  # an object: line by line
    at_once = formats.decode(body, formats.JSON_LINES, FOUR)
    assert same(at_once, [[1.0, 2.5, math.nan, 4.0], [5.0, 1.0, 1000.0, -0.0]])
    assert same(formats.decode(mixed, formats.JSON_LINES, FOUR)[:2], at_once.tolist())
