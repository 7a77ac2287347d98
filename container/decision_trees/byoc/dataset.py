"""A channel's data as features (numbers, and strings such as categories) and a label vector.

CSV files have no header and the label in the first column; Parquet files have the label in
their first column or in the column that the label_column hyperparameter names.

Files are read one after another, each in blocks of a few MiB that pyarrow parses on every CPU
at once; each block is copied into arrays that grow in place and then freed. Memory stays close
to the size of the result, however big the files, and the same path reads plain, gzip and Pipe
mode (FIFO) input.

A feature column holds numbers or strings. Parquet files say which in their schema; CSV files
cannot, so the channel's first block decides: a column whose every cell there is a number (or
missing) is numeric, any other holds strings, and later blocks and files must agree. Missing
cells are empty or one of pyarrow's null spellings (NA, NaN, null, N/A, ...) in both kinds.

When every feature is numeric, the features are one float32 matrix in C order (NaN where
missing), the type scikit-learn's trees work in, so fitting makes no copy of it. When some hold
strings, they are a pandas DataFrame, for a Pipeline that encodes them (pandas is imported only
then): numeric columns float32 with NaN, string columns of dtype object holding str, with np.nan
where missing. np.nan, not None, because SimpleImputer looks for np.nan by default and
OneHotEncoder and OrdinalEncoder take either as a missing value.

Labels that are numbers are kept as numbers, int64 or float64 (a regressor's target); others are
kept as codes into the table of the labels seen (a classifier's classes), which become numbers at
the end if every one is a number ("0", "1", "2" -> 0, 1, 2). CSV labels are numbers when every
label of the channel's first block is one, and are then parsed as such: int64 when every one is
an integer, else float64.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from byoc.channels import Channel
from byoc.cpus import available_cpus
from byoc.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)

CPUS = available_cpus()

CSV_BLOCK_BYTES = max(8, CPUS) << 20
"""CSV text read and parsed at a time: pyarrow parses it in pieces of 1 MiB, one per CPU at a
time, so this keeps every CPU busy while staying small next to the result."""

PARQUET_BATCH_ROWS = 1 << 16

FIRST_ROWS = 1 << 16
"""Rows allocated before the arrays grow (they double, in place)."""

PROGRESS_SECONDS = 10.0
"""How often a long read reports its progress."""

CSV_LABEL = "label"
"""The name given to the first column of CSV files, which have no header."""

CSV_RULES = (
    "CSV input has no header and the label in the first column; a feature column whose cells "
    "in the channel's first block are all numbers (or missing) must hold numbers throughout, "
    "any other holds strings"
)

TEXT = pa.dictionary(pa.int32(), pa.string())
"""How CSV text is parsed: each block stores each distinct value once."""

NUMBER = pa.float32()

PANDAS_NEEDED = (
    "string features need pandas; add pandas to container/requirements.in and run make lock"
)

# Arrow counts the host's CPUs; in a container limited to fewer, its threads would contend.
pa.set_cpu_count(CPUS)
# The system allocator returns freed blocks to the next block's parse; pyarrow's default
# (mimalloc) would keep tens of MiB of them that the fit cannot use.
pa.set_memory_pool(pa.system_memory_pool())

_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'"
)
_CONVERSION_COLUMN = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error")
_PARSE_ERROR = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+): (.*)")


@dataclass
class Dataset:
    """The rows of one channel."""

    features: np.ndarray | pd.DataFrame
    """float32, one row per example, C order; a DataFrame when some columns hold strings."""
    labels: np.ndarray
    feature_names: list[str]
    label_column: str | None
    """The label's column name in Parquet files; None for CSV (the first column)."""
    files: int
    string_columns: list[int] = field(default_factory=list)
    """The features that hold strings, as indices into feature_names; empty when all are numeric.
    Data to predict from (validation data, requests) needs the same."""

    @property
    def rows(self) -> int:
        """The number of examples."""
        return len(self.labels)


def data_files(channel: Channel) -> list[Path]:
    """Every CSV and Parquet file under the channel directory, recursively, in a stable order.

    Hidden files and directories (names starting with ".") are skipped.
    """
    if channel.pipe:
        return [channel.path]
    found = [
        path
        for path in channel.path.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(channel.path).parts)
    ]
    files = sorted(
        (p for p in found if p.name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)),
        key=lambda p: p.relative_to(channel.path).as_posix(),
    )
    if not files:
        accepted = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
        example = f" (such as {found[0].relative_to(channel.path)})" if found else ""
        raise InputError(
            f'Channel "{channel.name}" has no data files: {channel.path} holds {len(found)} '
            f"files{example}, none ending in {accepted}."
        )
    return files


def read(
    channel: Channel,
    label_column: str | None = None,
    log: Callable[[str], None] = print,
    string_columns: list[int] | None = None,
) -> Dataset:
    """Read every data file of the channel; InputError says which file and row is wrong.

    string_columns: the training data's, when reading validation data, for which they then
    decide the kinds of CSV columns (a string column whose first block happens to hold only
    numbers stays a string column). Parquet files have their schema's: compare string_columns.
    """
    files = data_files(channel)
    parquet = [f for f in files if f.name.endswith(PARQUET_SUFFIXES)]
    if parquet and len(parquet) < len(files):
        raise InputError(
            f'Channel "{channel.name}" mixes CSV and Parquet files; use one format per channel.'
        )
    if channel.pipe and "parquet" in channel.content_type:
        raise InputError(f'Channel "{channel.name}": Parquet cannot be read in Pipe mode.')
    if label_column is not None and not parquet:
        raise InputError(
            f"Hyperparameter label_column={label_column!r} applies to Parquet files only: "
            f"{CSV_RULES}."
        )
    batches = _parquet_batches_reader(label_column) if parquet else _CsvReader(string_columns)
    started = last_report = time.monotonic()
    table: _Table | None = None
    for path in files:
        where = path.relative_to(channel.path.parent).as_posix()
        for first_row, batch in batches(path, where):
            if table is None:
                table = _Table(batch.schema, where)
            table.append(batch, where, first_row)
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                log(f"{where}: {table.rows:,} rows of {channel.name} read so far")
    if table is None or table.rows == 0:
        raise InputError(f'Channel "{channel.name}" has no rows: its {len(files)} files are empty.')
    dataset = table.finish(label_column=table.label_column if parquet else None, files=len(files))
    strings = f" ({len(dataset.string_columns)} holding strings)" if dataset.string_columns else ""
    log(
        f"{channel.name}: read {dataset.rows:,} rows x {len(dataset.feature_names)} features"
        f"{strings} from {_count(len(files), 'file')} in {time.monotonic() - started:.2f} s"
    )
    return dataset


Batches = Iterator[tuple[int, pa.RecordBatch]]
"""The number of each batch's first row in its file (from 1), and the batch: label, features."""


class _Table:
    """The rows of a channel, in arrays that grow in place: float32 numbers, codes of strings."""

    def __init__(self, schema: pa.Schema, first_file: str) -> None:
        self.label_column, *self.feature_names = schema.names
        self.first_file = first_file
        self.string_columns = [j for j, f in enumerate(list(schema)[1:]) if _strings(f.type)]
        self.pandas = (
            _import_pandas(first_file, self.feature_names[self.string_columns[0]])
            if self.string_columns
            else None
        )
        strings = set(self.string_columns)
        self.numeric_columns = [j for j in range(len(self.feature_names)) if j not in strings]
        self.features = np.empty((0, len(self.numeric_columns)), dtype=np.float32)
        """The numeric columns: all the features when none holds strings."""
        self.codes = np.empty((0, len(self.string_columns)), dtype=np.int32)
        """The string columns' values as codes into `self.strings`; -1 where missing."""
        self.strings: list[dict[Any, int]] = [{} for _ in self.string_columns]
        """Every value seen in each string column, and its code."""
        self.labels = _Labels()
        self.rows = self.capacity = 0

    def append(self, batch: pa.RecordBatch, where: str, first_row: int) -> None:
        """Add a batch's rows: its label column, then its features."""
        names = batch.schema.names[1:]
        if names != self.feature_names:
            raise InputError(_other_columns(where, names, self.first_file, self.feature_names))
        columns = batch.columns[1:]
        if [j for j, c in enumerate(columns) if _strings(c.type)] != self.string_columns:
            raise InputError(self._other_kinds(where, columns))
        labels = batch.column(0)
        if labels.null_count:
            row = first_row + pc.index(pc.is_null(labels), True).as_py()
            raise InputError(f"{where}, row {row}: the label is missing (empty or NA).")
        start, end = self.rows, self.rows + batch.num_rows
        if end > self.capacity:
            self._allocate(max(end, 2 * self.capacity, FIRST_ROWS))
        self.labels.put(labels, start, end)
        block = self.features[start:end]
        for k, j in enumerate(self.numeric_columns):
            block[:, k] = _float32(columns[j])
        for k, j in enumerate(self.string_columns):
            self.codes[start:end, k] = _codes(columns[j], self.strings[k])
        self.rows = end

    def finish(self, label_column: str | None, files: int) -> Dataset:
        self._allocate(self.rows)
        return Dataset(
            self._frame() if self.string_columns else self.features,
            self.labels.finish(),
            self.feature_names,
            label_column,
            files,
            list(self.string_columns),
        )

    def _frame(self) -> pd.DataFrame:
        """The features as a DataFrame: float32 columns and object columns of str (or np.nan)."""
        pandas = self.pandas
        columns: dict[int, Any] = {}
        for k, j in enumerate(self.numeric_columns):
            columns[j] = np.ascontiguousarray(self.features[:, k])
        self.features = np.empty((0, 0), dtype=np.float32)  # frees the matrix
        for k, j in enumerate(self.string_columns):
            values = np.array([*self.strings[k], np.nan], dtype=object)  # code -1: np.nan
            columns[j] = pandas.Series(values[self.codes[:, k]], dtype=object, copy=False)
        frame = pandas.DataFrame({j: columns[j] for j in range(len(columns))}, copy=False)
        frame.columns = self.feature_names  # set after, so that equal names stay apart
        return frame

    def _other_kinds(self, where: str, columns: list[pa.Array]) -> str:
        strings = set(self.string_columns)
        j = next(j for j, c in enumerate(columns) if _strings(c.type) != (j in strings))
        kind, first = ("numbers", "strings") if j in strings else ("strings", "numbers")
        return (
            f"{where}: column {self.feature_names[j]!r} holds {kind} ({columns[j].type}), but "
            f"in {self.first_file} it holds {first}: every file of a channel needs the same "
            "column types."
        )

    def _allocate(self, rows: int) -> None:
        # Nothing else refers to the arrays' memory, so resizing in place (realloc, which the
        # kernel does without copying large arrays) is safe.
        self.features.resize((rows, len(self.numeric_columns)), refcheck=False)
        self.codes.resize((rows, len(self.string_columns)), refcheck=False)
        self.labels.values.resize(rows, refcheck=False)
        self.capacity = rows


class _Labels:
    """Labels in an array that grows in place: numbers as they come, or codes of text labels."""

    def __init__(self) -> None:
        self.values: np.ndarray = np.empty(0, dtype=np.int64)
        """int64 or float64 labels, or int32 codes into `seen`."""
        self.seen: dict[Any, int] | None = None
        """Every label seen, and its code; None while the labels are numbers."""

    def put(self, labels: pa.Array, start: int, end: int) -> None:
        kind = labels.type
        if self.seen is None and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            if pa.types.is_floating(kind) and self.values.dtype != np.float64:
                self.values = self.values.astype(np.float64)  # then every label is a float
            self.values[start:end] = labels.to_numpy(zero_copy_only=False)
            return
        if self.seen is None:
            self._to_codes(start)
        assert self.seen is not None
        self.values[start:end] = _codes(labels, self.seen)

    def _to_codes(self, rows: int) -> None:
        """Text labels after numbers (rare): the numbers so far become text too, such as "1"."""
        unique, inverse = np.unique(self.values[:rows], return_inverse=True)
        self.seen = {}
        lookup = np.array(
            [self.seen.setdefault(str(number), len(self.seen)) for number in unique.tolist()],
            dtype=np.int32,
        )
        codes = np.empty(len(self.values), dtype=np.int32)
        codes[:rows] = lookup[inverse]
        self.values = codes

    def finish(self) -> np.ndarray:
        if self.seen is None:
            return self.values
        return np.asarray(_label_values(list(self.seen)))[self.values]


def _strings(kind: pa.DataType) -> bool:
    """Whether a column of this type holds strings (as a string feature does)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _numbers(kind: pa.DataType) -> bool:
    """Whether a column of this type holds numbers (booleans are 0 and 1)."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _import_pandas(where: str, column: str) -> Any:
    try:
        import pandas
    except ImportError as error:
        raise InputError(f"{where}: column {column!r} holds strings: {PANDAS_NEEDED}.") from error
    return pandas


def _float32(column: pa.Array) -> np.ndarray:
    """A column's values as float32 (nulls as NaN), without copying when it has no nulls."""
    if column.type != pa.float32():
        column = column.cast(pa.float32(), safe=False)
    if column.null_count:
        return column.to_numpy(zero_copy_only=False)
    # Much cheaper than to_numpy(), which costs more than the copy itself for small batches.
    return np.frombuffer(column.buffers()[1], np.float32, len(column), column.offset * 4)


def _codes(column: pa.Array, seen: dict[Any, int]) -> np.ndarray:
    """The codes of a column's values in `seen`, which gains the values it lacks; -1 for nulls."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    lookup = np.array(
        [
            -1 if value is None else seen.setdefault(value, len(seen))
            for value in column.dictionary.to_pylist()
        ]
        + [-1],
        dtype=np.int32,
    )
    indices = column.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(lookup) - 1)
    return lookup[indices.to_numpy()]


def _label_values(labels: list[Any]) -> list[Any]:
    """Text labels become numbers when every one is a number ("0", "1" or "2.5")."""
    if not all(isinstance(label, str) for label in labels):
        return labels
    for number in (int, float):
        try:
            return [number(label) for label in labels]
        except ValueError:
            continue
    return labels


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _short(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 5 else f"{', '.join(names[:4])}, ..., {names[-1]}"


def _other_columns(where: str, names: list[str], first_file: str, first_names: list[str]) -> str:
    return (
        f"{where} has {len(names)} features ({_short(names)}), but {first_file} has "
        f"{len(first_names)} ({_short(first_names)}): every file of a channel needs the same "
        "columns."
    )


class _CsvReader:
    """Batches of a channel's CSV files (.csv.gz decompressed) or FIFO; InputError on bad rows.

    The channel's first block decides every column's type (see _first_block), unless the
    string columns are given; the blocks after it are parsed with those types.
    """

    def __init__(self, string_columns: list[int] | None = None) -> None:
        self.given = string_columns
        """The string columns that the training data has, if these are validation data."""
        self.strings: list[bool] | None = None
        """Whether each feature column holds strings; None until the first block has rows."""
        self.label_type: pa.DataType = TEXT
        """int64 or float64 once the first block's labels are all numbers."""
        self.first_block = ""
        """The file whose first block decided the types."""
        self.names: list[str] = []

    def __call__(self, path: Path, where: str) -> Batches:
        # pa.input_stream decompresses .gz but cannot open a FIFO (it seeks); open() can.
        with open(path, "rb") if path.is_fifo() else pa.input_stream(str(path)) as source:
            names: list[str] = []
            first_row = 1
            for text in _text_blocks(source):
                if not names:
                    names = _csv_feature_names(text, where)
                    if self.strings is not None and names != self.names:
                        raise InputError(_other_columns(where, names, self.first_block, self.names))
                if self.strings is None:
                    table = self._first_block(text, names, where)
                else:
                    table = self._parse(text, names, where, first_row)
                for batch in table.to_batches():
                    yield first_row, batch
                    first_row += batch.num_rows

    def _first_block(self, text: pa.Buffer, names: list[str], where: str) -> pa.Table:
        """Parse the channel's first block, deciding each column's type from its values.

        A feature column is numeric when each of its cells here is a number or missing (what
        pyarrow parses as float32, after spaces and tabs), else it holds strings. The fast path,
        all numbers, parses once. Labels are numbers when every label here is a number.
        """
        self.first_block, self.names = where, names
        if self.given is not None:
            self.strings = [j in self.given for j in range(len(names))]
            table = self._parse(text, names, where, 1)
        else:
            table = self._decide_kinds(text, names, where)
        if table.num_rows == 0:  # blank lines: the next block decides
            self.strings = None
            return table
        return self._numeric_labels(table)

    def _decide_kinds(self, text: pa.Buffer, names: list[str], where: str) -> pa.Table:
        """Parse the block as numbers; where that fails, find the columns that hold strings."""
        self.strings = [False] * len(names)
        try:
            return _try_parse(text, self._types(names))
        except pa.ArrowInvalid as error:
            if not _CONVERSION_COLUMN.search(str(error)):
                raise InputError(_explain(error, where, 1)) from error
        cells = _parse_block(text, dict.fromkeys([CSV_LABEL, *names], pa.string()), where, 1)
        self.strings = [not _numbers_only(cells.column(j + 1), where, j) for j in range(len(names))]
        del cells
        return self._parse(text, names, where, 1)

    def _numeric_labels(self, table: pa.Table) -> pa.Table:
        """The table with numbers for labels if every label is a number (int64 if all ints)."""
        labels = table.column(0)
        texts = [pc.utf8_trim(chunk.dictionary, characters=" \t") for chunk in labels.chunks]
        for kind in (pa.int64(), pa.float64()):
            try:
                values = [text.cast(kind) for text in texts]
            except pa.ArrowInvalid:
                continue
            self.label_type = kind
            numbers = [
                value.take(chunk.indices)
                for value, chunk in zip(values, labels.chunks, strict=True)
            ]
            return table.set_column(0, CSV_LABEL, pa.chunked_array(numbers, kind))
        return table

    def _parse(self, text: pa.Buffer, names: list[str], where: str, first_row: int) -> pa.Table:
        """Parse a block with the types decided; labels that stop being ints or numbers widen."""
        while True:
            try:
                return _try_parse(text, self._types(names))
            except pa.ArrowInvalid as error:
                column = _CONVERSION_COLUMN.search(str(error))
                if column and int(column[1]) == 0 and self.label_type != TEXT:
                    self.label_type = pa.float64() if self.label_type == pa.int64() else TEXT
                    continue
                numeric = (
                    " in the training data"
                    if self.given is not None
                    else f": its every cell in the first block of {self.first_block} is a number "
                    "or missing"
                )
                raise InputError(_explain(error, where, first_row, numeric)) from error

    def _types(self, names: list[str]) -> dict[str, pa.DataType]:
        assert self.strings is not None
        return {
            CSV_LABEL: self.label_type,
            **{name: TEXT if s else NUMBER for name, s in zip(names, self.strings, strict=True)},
        }


def _numbers_only(cells: pa.ChunkedArray, where: str, j: int) -> bool:
    """Whether every cell of a column is a number or missing; InputError if only the first is not.

    A column of numbers but for row 1 looks like a header row's: that is more likely than a
    column of strings, most of them numbers.
    """
    if _all_numbers(cells):
        return True
    rest = cells.slice(1)
    if cells[0].is_valid and rest.null_count < len(rest) and _all_numbers(rest):
        raise InputError(
            f"{where}, row 1, column {j + 2}: {cells[0].as_py()!r} is not a number (a header "
            f"row?), unlike every other cell of the column in the first block. {CSV_RULES}."
        )
    return False


def _all_numbers(cells: pa.ChunkedArray) -> bool:
    """Whether pyarrow's CSV reader would parse every cell as float32 (nulls included)."""
    try:
        pc.utf8_trim(cells, characters=" \t").cast(NUMBER)
    except pa.ArrowInvalid:
        return False
    return True


def _text_blocks(source: BinaryIO) -> Iterator[pa.Buffer]:
    """The text in blocks of whole rows, read into one buffer that every block reuses.

    A block is valid until the next is asked for, which is enough: pyarrow copies what it parses.
    """
    buffer = bytearray(CSV_BLOCK_BYTES)
    kept = 0
    while read := source.readinto(memoryview(buffer)[kept:]):
        filled = kept + read
        end = _rows_end(buffer, filled)
        if end:
            yield pa.py_buffer(buffer)[:end]
        kept = filled - end
        buffer[:kept] = buffer[end:filled]
        if kept == len(buffer):
            # A row longer than the buffer. A new buffer, since the last block may still refer
            # to this one, which therefore cannot be resized.
            buffer = buffer + bytes(len(buffer))
    if kept:
        yield pa.py_buffer(buffer)[:kept]


def _rows_end(text: bytearray, filled: int) -> int:
    """Where the last complete row in text[:filled] ends: after a newline outside quotes (or 0).

    Rows start outside quotes, so a newline is outside them when an even number of quote
    characters precede it (an escaped quote, "", counts two).
    """
    end = text.rfind(b"\n", 0, filled) + 1
    quotes = 0
    if text.find(b'"', 0, end) >= 0:
        quotes = np.count_nonzero(np.frombuffer(text, np.uint8, end) == ord('"'))
    while quotes % 2:
        start = text.rfind(b"\n", 0, end - 1) + 1
        quotes -= text.count(b'"', start, end)
        end = start
    return end


def _csv_feature_names(text: pa.Buffer, where: str) -> list[str]:
    """Names for the feature columns of the file whose first block this is."""
    head = text[: 1 << 16].to_pybytes()
    if b"\n" not in head:
        head = text.to_pybytes()
    columns = len(next(csv.reader(io.StringIO(head.decode("utf-8", errors="replace")))))
    if columns < 2:
        raise InputError(
            f"{where}, row 1: one column only, but a row needs a label and features. {CSV_RULES}."
        )
    return [f"feature_{i}" for i in range(1, columns)]


def _parse_block(
    text: pa.Buffer, types: dict[str, pa.DataType], where: str, first_row: int
) -> pa.Table:
    """Parse a block on every CPU; on bad input, InputError with the file's row number."""
    try:
        return _try_parse(text, types)
    except pa.ArrowInvalid as error:
        raise InputError(_explain(error, where, first_row)) from error


def _try_parse(text: pa.Buffer, types: dict[str, pa.DataType]) -> pa.Table:
    """Parse a block on every CPU; on bad input, pyarrow's error with the block's row number."""
    try:
        return _read_csv(text, types, parallel=True)
    except pa.ArrowInvalid:
        # A parallel parse splits the text at every newline, so it fails on a newline inside a
        # quoted value, and its errors carry no row number. A serial parse handles the first and
        # finds the second.
        return _read_csv(text, types, parallel=False)


def _read_csv(text: pa.Buffer, types: dict[str, pa.DataType], parallel: bool) -> pa.Table:
    return pcsv.read_csv(
        pa.BufferReader(text),
        read_options=pcsv.ReadOptions(column_names=list(types), use_threads=parallel),
        parse_options=pcsv.ParseOptions(newlines_in_values=not parallel),
        convert_options=pcsv.ConvertOptions(strings_can_be_null=True, column_types=types),
    )


def _explain(error: pa.ArrowInvalid, where: str, first_row: int, numeric: str = "") -> str:
    """pyarrow's message in the words of this program's input rules, with file, row and column.

    numeric: why a column holds numbers, said after "column N holds numbers".
    """
    message = str(error)
    if match := _CONVERSION_ERROR.search(message):
        column, row, value = int(match[1]) + 1, first_row - 1 + int(match[2]), match[3]
        header = " (a header row?)" if row == 1 else ""
        why = f", but column {column} holds numbers{numeric}" if numeric else ""
        return (
            f"{where}, row {row}, column {column}: {value!r} is not a number{header}{why}. "
            f"{CSV_RULES}."
        )
    if match := _PARSE_ERROR.search(message):
        row, expected, got, text = first_row - 1 + int(match[1]), match[2], match[3], match[4]
        return (
            f"{where}, row {row}: {got} columns where row 1 has {expected}: {text[:200]!r}. "
            f"{CSV_RULES}."
        )
    return f"{where}: cannot read the data: {message}. {CSV_RULES}."


def _parquet_batches_reader(label_column: str | None) -> Callable[[Path, str], Batches]:
    """Batches of a Parquet file: the label column and every other column as a feature."""

    def batches(path: Path, where: str) -> Batches:
        parquet = _open_parquet(path, where)
        schema = parquet.schema_arrow
        label = label_column if label_column is not None else schema.names[0]
        if label not in schema.names:
            raise InputError(
                f"{where} has no column {label!r} (hyperparameter label_column); its columns "
                f"are {_short(schema.names)}."
            )
        names = [name for name in schema.names if name != label]
        for name in names:
            kind = schema.field(name).type
            if not (_numbers(kind) or _strings(kind)):
                raise InputError(
                    f"{where}: column {name!r} is {kind}, but every column other than the "
                    f"label ({label!r}) must hold numbers or strings."
                )
        if not names:
            raise InputError(f"{where} has a label column {label!r} but no feature columns.")
        first_row = 1
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[label, *names]):
            yield first_row, batch
            first_row += batch.num_rows

    return batches


def _open_parquet(path: Path, where: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{where}: not a readable Parquet file: {e}") from e
