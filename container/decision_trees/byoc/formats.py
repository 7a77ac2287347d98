"""Request bodies to rows, and output records to response bodies, per media type.

Decoding reads rows of the model's `Columns`. When none of them holds strings, the rows come back
as a 2-D float array (float32 from a big CSV body, which pyarrow parses, else float64), a missing
value (an empty or `NA` CSV cell, a JSON null) as NaN; otherwise
as a 2-D object array of `str` (None when missing) and `float` (NaN when missing) cells. Every
failure is a `DecodeError` naming the row at fault. The common case takes a fast path; when it
fails, a slower exact pass finds the first bad row for the message.

Encoding writes one record per input row: a label, a number, a list or a dict, in any media type,
without a Python repr or a pickle.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math
import re
import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header, parse_list_header, parse_options_header

from byoc.errors import InputError

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

UTF8_BOM = b"\xef\xbb\xbf"

MISSING = ("", "NA")
"""The CSV cells (and JSON strings) that stand for a missing value, besides JSON null."""


HEADER_HINT = " (a header row? send data rows only, or Content-Type: text/csv; header=present)"
TOO_DEEP = "JSON nested too deeply: a row is a flat list or object of values"


class DecodeError(InputError):
    """The body is not valid for its media type; the message names the row and the problem."""


class UnsupportedType(ValueError):
    """A Content-Type the server cannot read (415), with the message to send back."""


@dataclass(frozen=True)
class ContentType:
    """What a request's Content-Type header asks of the decoder."""

    media_type: str
    """One of MEDIA_TYPES."""
    charset: str | None = None
    """The text encoding to transcode from; None for UTF-8 (and ASCII, a subset of it)."""
    header: bool = False
    """text/csv's `header=present` (RFC 4180): the first row names the columns and is skipped."""


@dataclass(frozen=True)
class Columns:
    """The features a model reads, in order, and which of them hold strings (categorical)."""

    names: tuple[str, ...]
    strings: frozenset[int] = frozenset()
    """Indices of the string-valued columns."""

    @property
    def width(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Negotiated:
    """The response type chosen for an Accept header."""

    media_type: str
    """One of MEDIA_TYPES."""
    verbose: bool
    """The chosen Accept item has a `verbose` parameter: JumpStart's `application/json;verbose`."""


@functools.lru_cache(maxsize=256)
def media_type(header: str | None) -> str:
    """The bare, lower-case media type of a Content-Type or Accept item, parameters dropped."""
    bare = (header or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(bare, bare)


@functools.lru_cache(maxsize=256)
def content_type(header: str | None) -> ContentType:
    """The decoding a Content-Type header asks for; UnsupportedType says why none can be done.

    No header means CSV, as in the classic container. `charset` may name any text encoding Python
    knows (Excel exports Windows-1252 and UTF-16); `header` is `present` or `absent`. Other
    parameters are ignored.
    """
    kind, parameters = parse_options_header(header or "")
    bare = media_type(kind) or CSV
    if bare not in MEDIA_TYPES:
        raise UnsupportedType(
            f"unsupported Content-Type {bare!r}; send one of: {', '.join(MEDIA_TYPES)}"
        )
    charset = None
    if bare != NPY and parameters.get("charset", "").strip():
        name = parameters["charset"].strip()
        try:
            # bytes.decode takes text encodings only, never a codec such as zlib or base64 (it
            # skips that check for no bytes).
            b"\0\0\0\0".decode(name)
            charset = codecs.lookup(name).name
        except UnicodeError:
            charset = codecs.lookup(name).name
        except LookupError:
            raise UnsupportedType(
                f"unsupported charset {show(name)}; send UTF-8 or name a text encoding"
            ) from None
        if charset in ("utf-8", "ascii"):
            charset = None
    present = parameters.get("header", "absent").strip().lower()
    if bare == CSV and present not in ("present", "absent"):
        raise UnsupportedType(f"header={show(present)}: text/csv's header is present or absent")
    return ContentType(bare, charset, header=bare == CSV and present == "present")


# A parameter without a value, such as JumpStart's `;verbose`: werkzeug drops those, so it is given
# one before parsing.
_FLAG = re.compile(r";[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*(?=;|$)")


@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None, default: str) -> Negotiated | None:
    """The response type for an Accept header: its most preferred supported type, else None.

    A missing header or `*/*` gives `default`; `text/*` or `application/*` gives `default` if it is
    of that family, else the first of MEDIA_TYPES that is. Each supported type takes the quality of
    the most specific item matching it (q=0 excludes it); the highest quality wins, then the more
    specific item, then the item listed first.
    """
    if not (accept or "").strip():
        return Negotiated(default, verbose=False)
    items = []
    for position, item in enumerate(parse_list_header(accept)):
        # One item at a time, to keep its position: werkzeug checks the q value (it skips an item
        # with an invalid one) and keeps the other parameters.
        parsed = parse_accept_header(_FLAG.sub(r";\1=1", item), MIMEAccept)
        if parsed:
            value, quality = parsed[0]
            kind, parameters = parse_options_header(value)
            verbose = parameters.get("verbose", "0").lower() not in ("0", "false")
            items.append((media_type(kind), quality, -position, verbose))
    best: tuple[tuple[float, int, int, int], Negotiated] | None = None
    for order, offered in enumerate(dict.fromkeys((default, *MEDIA_TYPES))):
        matching = [(_specificity(kind, offered), position, q, v) for kind, q, position, v in items]
        specificity, position, quality, verbose = max(matching, default=(-1, 0, 0.0, False))
        rank = (quality, specificity, position, -order)
        if specificity >= 0 and quality > 0 and (best is None or rank > best[0]):
            best = (rank, Negotiated(offered, verbose))
    return None if best is None else best[1]


def _specificity(kind: str, offered: str) -> int:
    """How closely the media range `kind` matches the type `offered`: 2 exactly, 1 as `text/*`,
    0 as `*/*`; -1 when it does not."""
    if kind == offered:
        return 2
    family, _, subtype = kind.partition("/")
    if subtype != "*":
        return -1
    if family == "*":
        return 0
    return 1 if offered.startswith(family + "/") else -1


def decode(
    body: bytes,
    content_type: str,
    columns: Columns,
    charset: str | None = None,
    header: bool = False,
) -> np.ndarray:
    """The rows of `body`, which has one of MEDIA_TYPES, as read by a model of `columns`.

    Float rows when no column holds strings, else rows of objects: see the module's docstring.
    Text in another `charset` is transcoded to UTF-8 first. A UTF-8 byte order mark before text
    (Excel writes one) is not part of the first row. `header`: the first CSV row is skipped.
    """
    if content_type == NPY:
        return _decode_npy(body, columns)
    if charset is not None:
        try:
            body = body.decode(charset).encode("utf-8")
        except UnicodeError as e:
            raise DecodeError(f"the body is not {charset} text: {e}") from None
    body = body.removeprefix(UTF8_BOM)
    if content_type == CSV:
        return _decode_csv(body, columns, header)
    return DECODERS[content_type](body, columns)


def encode(records: Sequence[Any], accept: str, batch: bool) -> bytes:
    """`records` (one value per input row, all of one shape) as a body of type `accept`.

    A record is a string, a number or bool (Python or numpy), a list (or array) of those or a dict
    of those and of such lists. Non-finite numbers are JSON null in JSON, `nan` or `inf` in CSV.

    Line-based outputs end every record with a newline, except in batch transform (`batch`), where
    SageMaker appends the newline itself (AssembleWith=Line): one more would add a blank line.
    """
    if accept == CSV:
        lines = _csv_lines(records)
    elif accept == NPY:
        if isinstance(records, np.ndarray) and records.dtype.kind != "O":
            return _npy(records)
        return _npy(_array(records))
    elif accept == JSON and not batch:
        return _json({"predictions": records}).encode()
    else:
        lines = "\n".join(map(_json, records))
    return (lines if batch or not len(records) else lines + "\n").encode()


# Encoding.


def _json(value: Any) -> str:
    try:
        return _JSON.encode(value)
    except ValueError:  # a NaN or infinity: null instead, to stay valid JSON
        return _JSON.encode(_plain(value))


def _numpy_to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_JSON = json.JSONEncoder(allow_nan=False, default=_numpy_to_json)


def _plain(value: Any) -> Any:
    """`value` in the Python types json writes: numpy converted, non-finite floats None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | None):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return _plain(_python(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _python(value: np.ndarray | np.generic) -> Any:
    """A numpy array or scalar as Python values (lists for an array).

    A float32 becomes the shortest decimal that reads back as it, as numpy prints it, rather than
    the float64 it converts to: 0.97, not 0.9700000286102295.
    """
    if value.dtype.kind == "f" and value.dtype.itemsize < 8:
        value = value.astype(str).astype(np.float64)
    return value.tolist()


def _csv_lines(records: Sequence[Any]) -> str:
    try:
        text = "\n".join(records)
    except TypeError:
        text = None
    if text is not None and not any(c in text for c in ',"\r') and text.count("\n") < len(records):
        return text
    if text is None:
        try:  # Python (or numpy float64) floats: their repr is the shortest that reads back
            return "\n".join(map(float.__repr__, records))
        except TypeError:
            pass
    rows = list(map(_csv_row, records))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    text = buffer.getvalue()
    if "\r" not in text:
        return text.removesuffix("\n")
    # The csv module quotes a cell holding "\r" only when "\r" ends its lines: a row at a time.
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines = []
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        lines.append(buffer.getvalue().removesuffix("\r\n"))
    return "\n".join(lines)


def _csv_row(record: Any) -> list[str]:
    """A record's cells: a scalar is one, a list holds one each, a dict's values one each."""
    if isinstance(record, str):
        return [record]
    if isinstance(record, np.ndarray | np.generic):
        record = _python(record)
    if isinstance(record, dict):
        return [_csv_cell(v) for v in record.values()]
    if isinstance(record, list | tuple):
        return [_csv_cell(v) for v in record]
    return [_csv_cell(record)]


def _csv_cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = _python(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # the shortest that reads back; nan, inf and -inf when not finite
    if value is None:
        return ""
    return _json(value)  # a list or dict in one cell, as Autopilot writes probabilities


def _array(records: Sequence[Any]) -> np.ndarray:
    """Records as an array np.save writes without pickle: 1-D for scalars, 2-D for lists, a
    structured array (a field per key) for dicts."""
    if len(records) == 0:
        return np.array([], dtype=np.float64)
    if isinstance(records[0], dict):
        if not all(isinstance(r, dict) for r in records):
            raise TypeError("records of dicts and other values cannot be written as .npy")
        fields = {str(key): _array([r.get(key) for r in records]) for key in records[0]}
        table = np.empty(len(records), dtype=[(k, f.dtype, f.shape[1:]) for k, f in fields.items()])
        for key, field in fields.items():
            table[key] = field
        return table
    try:
        array = np.asarray(records)
    except ValueError:
        array = np.empty(0, dtype=object)
    if array.dtype.kind != "O":
        return array
    # None among numbers or strings, or records not all of one shape.
    flat = [v for r in records for v in (r if isinstance(r, list | tuple) else [r])]
    if all(isinstance(v, str | None) for v in flat):
        return np.asarray(_replace_none(records, ""), dtype=str)
    try:
        return np.asarray(records, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            "records that are not all numbers, all strings, equal-length lists of them or dicts "
            "of them cannot be written as .npy"
        ) from None


def _replace_none(records: Sequence[Any], new: Any) -> list[Any]:
    def replace(value: Any) -> Any:
        return new if value is None else value

    return [[*map(replace, r)] if isinstance(r, list | tuple) else replace(r) for r in records]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# Decoding.


def _decode_csv(body: bytes, columns: Columns, header: bool = False) -> np.ndarray:
    if columns.strings:
        return _csv_exact(body, columns, header)
    if len(body) >= PYARROW_MIN_BYTES:
        try:
            return _csv_with_pyarrow(body, columns.width, header)
        except (pa.ArrowInvalid, ValueError):
            return _csv_exact(body, columns, header)
    try:
        lines = _text(body).split("\n")
        if lines[-1] == "":
            lines.pop()
        # A header with a quoted line break leaves its tail here: that is no number, and the exact
        # pass below reads the header as CSV.
        lines = lines[1:] if header else lines
        rows = np.array([line.split(",") for line in lines], dtype=np.float64).reshape(
            len(lines), -1
        )
    except ValueError:  # a missing or bad cell, rows of different widths, or no rows
        return _csv_exact(body, columns, header)
    return rows if rows.shape[1] == len(columns.names) else _csv_exact(body, columns, header)


def _csv_with_pyarrow(body: bytes, width: int, header: bool = False) -> np.ndarray:
    table = pa_csv.read_csv(pa.py_buffer(body), **_pyarrow_options(width, header))
    if not table.num_rows:
        raise ValueError("no rows")
    # Each chunk's values buffer is read as it is, then the nulls (missing cells) set to NaN from
    # its validity bitmap, because to_numpy() imports pandas when it is installed: 0.3 s and ~30 MB
    # in each worker. Straight into float32, what the models read: no float64 copy of a big body
    # (a value beyond float32's range becomes infinity, which input_fn refuses).
    rows = np.empty((table.num_rows, width), dtype=np.float32)
    with np.errstate(over="ignore"):
        for i, column in enumerate(table.columns):
            _copy_column(column, rows[:, i])
    # pyarrow reads an empty line as a row of nulls. A row of missing values only (",,,") is one
    # too; the exact pass tells them apart.
    nulls_in_every_column = all(column.null_count for column in table.columns)
    if width > 1 and nulls_in_every_column and np.isnan(rows).all(axis=1).any():
        raise ValueError("a row without values")
    return rows


def _copy_column(column: pa.ChunkedArray, out: np.ndarray) -> None:
    """A float64 column's values into `out`, NaN where a cell is missing."""
    start = 0
    for chunk in column.chunks:
        end = start + len(chunk)
        validity, data = chunk.buffers()
        values = np.frombuffer(data, dtype=np.float64)
        out[start:end] = values[chunk.offset : chunk.offset + len(chunk)]
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
            valid = bits[chunk.offset : chunk.offset + len(chunk)].view(bool)
            out[start:end][~valid] = np.nan
        start = end


@functools.lru_cache(maxsize=8)
def _pyarrow_options(width: int, header: bool) -> dict[str, Any]:
    names = [f"f{i}" for i in range(width)]
    return {
        "read_options": pa_csv.ReadOptions(
            column_names=names, use_threads=False, skip_rows=int(header)
        ),
        "parse_options": pa_csv.ParseOptions(ignore_empty_lines=False),
        # A quoted empty cell is not null here: it fails, and _csv_exact reads it as missing.
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.float64()),
            null_values=list(MISSING),
            quoted_strings_can_be_null=False,
        ),
    }


def _csv_exact(body: bytes, columns: Columns, header: bool = False) -> np.ndarray:
    """Parse cell by cell, so that the first bad row and cell can be named.

    Rows are numbered as in the body: with a header, the first data row is row 2.
    """
    text = _text(body)
    if not text:
        raise DecodeError("empty body: send at least one CSV row")
    convert = _objects if columns.strings else _numbers
    rows = []
    records = enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
    number = 0  # the last row read
    try:
        if header:
            number, _ = next(records, (1, None))
        for number, cells in records:
            # An empty line is one empty cell: a missing value when the model reads one feature.
            rows.append(convert(cells or ([""] if columns.width == 1 else cells), number, columns))
    except csv.Error as e:
        raise DecodeError(f"row {number + 1}: malformed CSV: {e}") from None
    return _matrix(rows, columns)


def _decode_json(body: bytes, columns: Columns) -> np.ndarray:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            # One JSON value per line: what batch transform sends with SplitType=Line.
            return _decode_json_lines(body, columns)
        raise DecodeError(f"malformed JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise DecodeError(f"the body is not UTF-8 text: {e}") from None
    except RecursionError:
        raise DecodeError(TOO_DEEP) from None
    if isinstance(document, dict):
        # The rows under "instances", or one row: {"features": [...]} or keyed by column name.
        document = document.get("instances", [document])
    if not isinstance(document, list) or not document:
        raise DecodeError(
            'JSON must be a list of rows, one flat row, or {"instances": [...]}, '
            "a row being a list of values, an object keyed by feature name or "
            '{"features": [...]}'
        )
    if not isinstance(document[0], list | dict):
        document = [document]
    if not columns.strings:
        try:
            rows = np.array(document, dtype=np.float64)  # null is NaN here
            if rows.ndim == 2 and rows.shape[1] == len(columns.names):
                return rows
        except (TypeError, ValueError, OverflowError):
            pass  # the row by row pass names the row at fault
    read = _reader(columns)
    return _matrix([read(r, n) for n, r in enumerate(document, start=1)], columns)


def _decode_json_lines(body: bytes, columns: Columns) -> np.ndarray:
    text = _text(body)
    if not columns.strings:
        at_once = _flat_lines_at_once(text, columns.width)
        if at_once is not None:
            return at_once
    lines = text.split("\n")
    if lines[-1].strip() == "":
        lines.pop()
    if not lines:
        raise DecodeError("empty body: send at least one JSON line")
    read = _reader(columns)
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DecodeError(f"row {number}: malformed JSON: {e}") from None
        except RecursionError:
            raise DecodeError(f"row {number}: {TOO_DEEP}") from None
        rows.append(read(value, number))
    return _matrix(rows, columns)


def _flat_lines_at_once(text: str, width: int) -> np.ndarray | None:
    """The rows when every line is one flat list of `width` numbers (or nulls), parsed as a single
    JSON array: a third of the time of a json.loads per line. None when that does not hold, and
    the line by line pass then names the line at fault.

    Every line starting with "[" and ending with "]", and the rows being flat, one per line, means
    that no row runs across lines and no line holds two.
    """
    text = text.rstrip()
    breaks = text.count("\n")
    if not (text.startswith("[") and text.endswith("]") and text.count("\n[") == breaks):
        return None
    if text.count("]\n") + text.count("]\r\n") != breaks:
        return None
    try:
        rows = np.array(json.loads("[" + text.replace("\n", ",") + "]"), dtype=np.float64)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    return rows if rows.shape == (breaks + 1, width) else None


def _decode_npy(body: bytes, columns: Columns) -> np.ndarray:
    if not body.startswith(np.lib.format.MAGIC_PREFIX):
        # np.load would open a zip (.npz) as a lazy archive of arrays, not as an array.
        raise DecodeError("not a .npy array: it does not start with .npy's magic string")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, tokenize.TokenError) as e:
        # numpy tokenizes the header: a cut one is a TokenError, which is no ValueError.
        raise DecodeError(f"not a readable .npy array without pickle: {e}") from None
    except MemoryError:
        # numpy allocates the header's shape before it reads the data.
        raise DecodeError("the .npy header's shape is larger than the body can hold") from None
    if columns.strings and array.dtype.names is not None:
        if array.ndim > 1:
            raise DecodeError(f"the structured array has {array.ndim} dimensions; send 1 (rows)")
        fields, read = array.dtype.names, _reader(columns, keys="fields")
        return _matrix(
            [
                read(dict(zip(fields, r, strict=True)), n)
                for n, r in enumerate(array.reshape(-1).tolist(), start=1)
            ],
            columns,
        )
    kinds = "biufU" if columns.strings else "biuf"
    if array.dtype.kind not in kinds:
        expected = "numbers or strings (or a structured array)" if columns.strings else "numbers"
        raise DecodeError(f"the array holds {array.dtype}, not {expected}")
    if array.ndim not in (1, 2):
        raise DecodeError(f"the array has {array.ndim} dimensions; send 1 (a row) or 2 (rows)")
    if array.size == 0:
        # reshape cannot infer the rows of an empty array (a ValueError, once a 500).
        raise DecodeError(f"the array of shape {array.shape} is empty: send at least one row")
    array = array.reshape(-1, array.shape[-1])
    if array.shape[1] != columns.width:
        raise DecodeError(f"row 1: expected {columns.width} features, got {array.shape[1]}")
    if not columns.strings:
        return array.astype(np.float64)
    read = _reader(columns)
    return _matrix([read(r, n) for n, r in enumerate(array.tolist(), start=1)], columns)


def _reader(columns: Columns, keys: str = "keys") -> Callable[[Any, int], list[Any]]:
    """A function from a JSON row and its number to its converted cells.

    A row is a list of values, an object keyed by feature name (`keys`: a missing one is a missing
    value, an unknown one an error) or {"features": [...]}.
    """
    convert = _objects if columns.strings else _numbers
    known = frozenset(columns.names)

    def read(value: Any, number: int) -> list[Any]:
        if isinstance(value, dict):
            if isinstance(value.get("features"), list):
                value = value["features"]
            elif known.issuperset(value):
                value = [value.get(name) for name in columns.names]
            else:
                unknown = [key for key in value if key not in known]
                raise DecodeError(
                    f"row {number}: unknown {keys} {_names(unknown)}; expected {keys} among "
                    f"{_names(columns.names)}"
                )
        elif not isinstance(value, list):
            raise DecodeError(
                f"row {number}: expected a list of values, an object keyed by feature name "
                'or {"features": [...]}'
            )
        return convert(value, number, columns)

    return read


def _names(names: Sequence[str], most: int = 20) -> str:
    listed = ", ".join(json.dumps(str(name)) for name in names[:most])
    return listed if len(names) <= most else f"{listed}, ... ({len(names)} in all)"


def _numbers(cells: Sequence[Any], number: int, columns: Columns) -> list[float]:
    _check_width(cells, number, columns)
    return [_number(cell, number, None) for cell in cells]


def _objects(cells: Sequence[Any], number: int, columns: Columns) -> list[Any]:
    _check_width(cells, number, columns)
    return [
        _string(cell, number, name) if i in columns.strings else _number(cell, number, name)
        for i, (cell, name) in enumerate(zip(cells, columns.names, strict=True))
    ]


def _check_width(cells: Sequence[Any], number: int, columns: Columns) -> None:
    if len(cells) != columns.width:
        raise DecodeError(f"row {number}: expected {columns.width} features, got {len(cells)}")


def _number(cell: Any, number: int, name: str | None) -> float:
    if cell is None or (isinstance(cell, str) and cell in MISSING):
        return math.nan
    where = f"row {number}" if name is None else f"row {number}, column {json.dumps(name)}"
    try:
        if isinstance(cell, list | dict):
            raise TypeError
        return float(cell)
    except OverflowError:
        raise DecodeError(f"{where}: a number beyond the range of a float") from None
    except (TypeError, ValueError):
        hint = HEADER_HINT if number == 1 and isinstance(cell, str) else ""
        raise DecodeError(f"{where}: {show(cell)} is not a number{hint}") from None


def _string(cell: Any, number: int, name: str) -> str | None:
    if isinstance(cell, str):
        return None if cell in MISSING else cell
    if cell is None:
        return None
    if isinstance(cell, float) and math.isnan(cell):
        return None
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return str(cell)  # the text a CSV body would hold
    raise DecodeError(f"row {number}, column {json.dumps(name)}: {show(cell)} is not a string")


SHOW_MOST = 60
"""The most characters of a client's value an error message quotes."""


def show(cell: Any) -> str:
    """A cell for a message: as JSON, or its repr when JSON cannot hold it; cut to SHOW_MOST."""
    try:
        shown = json.dumps(cell)
    except (TypeError, ValueError):
        shown = repr(cell)
    return shown if len(shown) <= SHOW_MOST else f"{shown[: SHOW_MOST - 3]}..."


def _matrix(rows: list[list[Any]], columns: Columns) -> np.ndarray:
    if not rows:
        raise DecodeError("empty body: send at least one row")
    if not columns.strings:
        return np.array(rows, dtype=np.float64)
    matrix = np.empty((len(rows), columns.width), dtype=object)
    matrix[:] = rows
    return matrix


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"the body is not UTF-8 text: {e}") from None


DECODERS: dict[str, Callable[[bytes, Columns], np.ndarray]] = {
    CSV: _decode_csv,
    JSON: _decode_json,
    JSON_LINES: _decode_json_lines,
    NPY: _decode_npy,
}
