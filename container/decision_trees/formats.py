"""Request bodies to rows of numbers, and output records to response bodies, per media type.

Decoders return a 2-D float array and raise `DecodeError` naming the row at fault. The common
case takes a fast path; when it fails, a slower exact pass finds the first bad row for the message.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
NPY = "application/x-npy"
MEDIA_TYPES = (CSV, JSON, JSON_LINES, NPY)
"""Supported request and response types, the default first."""
ALIASES = {"application/x-jsonlines": JSON_LINES, "application/jsonl": JSON_LINES}

PYARROW_MIN_BYTES = 16 * 1024
"""Above this, pyarrow's C++ parser beats splitting in Python. It runs on one thread per request:
the workers already keep every CPU busy."""


class DecodeError(ValueError):
    """The body is not valid for its media type; the message names the row and the problem."""


@functools.lru_cache(maxsize=256)
def media_type(header: str | None) -> str:
    """The bare, lower-case media type of a Content-Type or Accept item, parameters dropped."""
    bare = (header or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(bare, bare)


@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None, default: str) -> str | None:
    """The response type for an Accept header: its most preferred supported type, else None.

    A missing header, `*/*` or a wildcard matching the default gives `default`; q=0 excludes.
    """
    candidates = []
    for position, item in enumerate(((accept or "").strip() or "*/*").split(",")):
        kind, *parameters = item.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if kind.strip() and quality > 0:
            candidates.append((-quality, position, media_type(kind)))
    for _, _, kind in sorted(candidates):
        if kind in MEDIA_TYPES:
            return kind
        if kind.endswith("/*"):
            prefix = kind.removesuffix("*")
            matches = [t for t in (default, *MEDIA_TYPES) if kind == "*/*" or t.startswith(prefix)]
            if matches:
                return matches[0]
    return None


def decode(body: bytes, content_type: str, n_features: int) -> np.ndarray:
    """The rows of `body`, which has one of MEDIA_TYPES; `n_features` is the row width expected."""
    return DECODERS[content_type](body, n_features)


def encode(records: Sequence[Any], accept: str, batch: bool) -> bytes:
    """`records` (one JSON-able value per row) as a body of type `accept`.

    Line-based outputs end every record with a newline, except in batch transform (`batch`), where
    SageMaker appends the newline itself (AssembleWith=Line): one more would add a blank line.
    """
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(records), allow_pickle=False)
        return buffer.getvalue()
    if accept == JSON and not batch:
        return json.dumps({"predictions": records}).encode()
    lines = _csv_lines(records) if accept == CSV else "\n".join(map(json.dumps, records))
    return (lines if batch or not records else lines + "\n").encode()


def _csv_lines(records: Sequence[Any]) -> str:
    try:
        text = "\n".join(records)
    except TypeError:
        text = None
    if text is not None and not any(c in text for c in ',"\r') and text.count("\n") < len(records):
        return text
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(r if isinstance(r, list | tuple) else [r] for r in records)
    return buffer.getvalue().removesuffix("\n")


def _decode_csv(body: bytes, n_features: int) -> np.ndarray:
    if len(body) >= PYARROW_MIN_BYTES:
        try:
            return _csv_with_pyarrow(body, n_features)
        except (pa.ArrowInvalid, ValueError):
            return _csv_exact(body, n_features)
    try:
        lines = _text(body).split("\n")
        if lines[-1] == "":
            lines.pop()
        return np.array([line.split(",") for line in lines], dtype=np.float64).reshape(
            len(lines), -1
        )
    except ValueError:
        return _csv_exact(body, n_features)


def _csv_with_pyarrow(body: bytes, n_features: int) -> np.ndarray:
    table = pa_csv.read_csv(pa.py_buffer(body), **_pyarrow_options(n_features))
    # Straight into the float32 matrix the tree reads: no float64 copy of a large body. Each
    # chunk's values buffer is read as it is (there are no nulls: no null_values), because
    # to_numpy() imports pandas when it is installed: 0.3 s and ~30 MB in each worker.
    rows = np.empty((table.num_rows, n_features), dtype=np.float32)
    for i, column in enumerate(table.columns):
        start = 0
        for chunk in column.chunks:
            values = np.frombuffer(chunk.buffers()[1], dtype=np.float64)
            rows[start : start + len(chunk), i] = values[chunk.offset : chunk.offset + len(chunk)]
            start += len(chunk)
    return rows


@functools.lru_cache(maxsize=8)
def _pyarrow_options(n_features: int) -> dict[str, Any]:
    names = [f"f{i}" for i in range(n_features)]
    return {
        "read_options": pa_csv.ReadOptions(column_names=names, use_threads=False),
        "parse_options": pa_csv.ParseOptions(ignore_empty_lines=False),
        # No null markers: an empty or "NA" cell is an error named by _csv_exact, as it is in a
        # small body, and pyarrow skips matching every cell against its list of null spellings.
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.float64()),
            null_values=[],
            quoted_strings_can_be_null=False,
        ),
    }


def _csv_exact(body: bytes, n_features: int) -> np.ndarray:
    """Parse cell by cell, so that the first bad row and cell can be named."""
    lines = _text(body).split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise DecodeError("empty body: send at least one CSV row")
    rows = []
    for number, line in enumerate(lines, start=1):
        cells = next(csv.reader([line.removesuffix("\r")]), [])
        rows.append(_numbers(cells, number, n_features))
    return np.array(rows, dtype=np.float64)


def _decode_json(body: bytes, n_features: int) -> np.ndarray:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            # One JSON value per line: what batch transform sends with SplitType=Line.
            return _decode_json_lines(body, n_features)
        raise DecodeError(f"malformed JSON: {e}") from None
    if isinstance(document, dict):
        if "instances" not in document:
            raise DecodeError('a JSON object must hold the rows under "instances"')
        document = document["instances"]
    if not isinstance(document, list) or not document:
        raise DecodeError('JSON must be a list of rows, one flat row, or {"instances": [...]}')
    if not isinstance(document[0], list | dict):
        document = [document]
    try:
        rows = np.array(document, dtype=np.float64)
        if rows.ndim == 2:
            return rows
    except (TypeError, ValueError):
        pass
    return np.array(
        [_numbers(_row(r, n), n, n_features) for n, r in enumerate(document, start=1)],
        dtype=np.float64,
    )


def _decode_json_lines(body: bytes, n_features: int) -> np.ndarray:
    lines = _text(body).split("\n")
    if lines[-1].strip() == "":
        lines.pop()
    if not lines:
        raise DecodeError("empty body: send at least one JSON line")
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DecodeError(f"row {number}: malformed JSON: {e}") from None
        rows.append(_numbers(_row(value, number), number, n_features))
    return np.array(rows, dtype=np.float64)


def _decode_npy(body: bytes, n_features: int) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DecodeError(f"not a readable .npy array without pickle: {e}") from None
    if array.dtype.kind not in "biuf":
        raise DecodeError(f"the array holds {array.dtype}, not numbers")
    if array.ndim not in (1, 2):
        raise DecodeError(f"the array has {array.ndim} dimensions; send 1 (a row) or 2 (rows)")
    return array.reshape(-1, array.shape[-1]).astype(np.float64)


def _row(value: Any, number: int) -> list[Any]:
    """A JSON row: a list of numbers, or an object holding one under "features"."""
    if isinstance(value, dict) and isinstance(value.get("features"), list):
        return value["features"]
    if isinstance(value, list):
        return value
    raise DecodeError(f'row {number}: expected a list of numbers or {{"features": [...]}}')


def _numbers(cells: Sequence[Any], number: int, n_features: int) -> list[float]:
    if len(cells) != n_features:
        raise DecodeError(f"row {number}: expected {n_features} features, got {len(cells)}")
    values = []
    for cell in cells:
        try:
            if isinstance(cell, list | dict) or cell is None:
                raise TypeError
            values.append(float(cell))
        except (TypeError, ValueError):
            hint = " (a header row? send data rows only)" if number == 1 else ""
            raise DecodeError(f"row {number}: {json.dumps(cell)} is not a number{hint}") from None
    return values


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"the body is not UTF-8 text: {e}") from None


DECODERS: dict[str, Callable[[bytes, int], np.ndarray]] = {
    CSV: _decode_csv,
    JSON: _decode_json,
    JSON_LINES: _decode_json_lines,
    NPY: _decode_npy,
}
