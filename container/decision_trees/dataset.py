"""A channel's data as a float32 feature matrix and a label vector.

CSV files have no header and the label in the first column; Parquet files have the label in
their first column or in the column that the label_column hyperparameter names.

Files are read one after another, each in blocks of a few MiB that pyarrow parses on every CPU
at once; each block is copied into arrays that grow in place and then freed. Memory stays close
to the size of the result, however big the files, and the same path reads plain, gzip and Pipe
mode (FIFO) input. Features are float32, the type scikit-learn's trees work in, so fitting makes
no copy of them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from channels import Channel
from failure import InputError
from settings import available_cpus

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

CSV_RULES = "CSV input has no header, the label in the first column and numbers in the others"

# Arrow counts the host's CPUs; in a container limited to fewer, its threads would contend.
pa.set_cpu_count(CPUS)
# The system allocator returns freed blocks to the next block's parse; pyarrow's default
# (mimalloc) would keep tens of MiB of them that the fit cannot use.
pa.set_memory_pool(pa.system_memory_pool())

_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'"
)
_PARSE_ERROR = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+): (.*)")


@dataclass
class Dataset:
    """The rows of one channel."""

    features: np.ndarray
    """float32, one row per example, C order."""
    labels: np.ndarray
    feature_names: list[str]
    label_column: str | None
    """The label's column name in Parquet files; None for CSV (the first column)."""
    files: int

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
    channel: Channel, label_column: str | None = None, log: Callable[[str], None] = print
) -> Dataset:
    """Read every data file of the channel; InputError says which file and row is wrong."""
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
    batches = _parquet_batches_reader(label_column) if parquet else _csv_batches
    started = last_report = time.monotonic()
    table: _Table | None = None
    for path in files:
        where = path.relative_to(channel.path.parent).as_posix()
        for first_row, batch in batches(path, where):
            if table is None:
                table = _Table(batch.schema.names, where)
            table.append(batch, where, first_row)
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                log(f"{where}: {table.rows:,} rows of {channel.name} read so far")
    if table is None or table.rows == 0:
        raise InputError(f'Channel "{channel.name}" has no rows: its {len(files)} files are empty.')
    dataset = table.finish(label_column=table.label_column if parquet else None, files=len(files))
    log(
        f"{channel.name}: read {dataset.rows:,} rows x {len(dataset.feature_names)} features "
        f"from {_count(len(files), 'file')} in {time.monotonic() - started:.2f} s"
    )
    return dataset


Batches = Iterator[tuple[int, pa.RecordBatch]]
"""The number of each batch's first row in its file (from 1), and the batch: label, features."""


class _Table:
    """The rows of a channel: float32 features and label codes, in arrays that grow in place."""

    def __init__(self, names: list[str], first_file: str) -> None:
        self.label_column, *self.feature_names = names
        self.first_file = first_file
        self.features = np.empty((0, len(self.feature_names)), dtype=np.float32)
        self.codes = np.empty(0, dtype=np.int32)
        self.rows = 0
        self.labels: dict[Any, int] = {}
        """Every label seen, and its code."""

    def append(self, batch: pa.RecordBatch, where: str, first_row: int) -> None:
        """Add a batch's rows: its label column, then its features."""
        names = batch.schema.names[1:]
        if names != self.feature_names:
            raise InputError(
                f"{where} has {len(names)} features ({_short(names)}), but {self.first_file} "
                f"has {len(self.feature_names)} ({_short(self.feature_names)}): every file of a "
                "channel needs the same columns."
            )
        labels = batch.column(0)
        if labels.null_count:
            row = first_row + pc.index(pc.is_null(labels), True).as_py()
            raise InputError(f"{where}, row {row}: the label is missing (empty or NA).")
        if not pa.types.is_dictionary(labels.type):
            labels = pc.dictionary_encode(labels)
        lookup = np.array(
            [
                self.labels.setdefault(label, len(self.labels))
                for label in labels.dictionary.to_pylist()
            ],
            dtype=np.int32,
        )
        start, end = self.rows, self.rows + batch.num_rows
        if end > len(self.codes):
            self._allocate(max(end, 2 * len(self.codes), FIRST_ROWS))
        self.codes[start:end] = lookup[labels.indices.to_numpy()]
        block = self.features[start:end]
        for j, column in enumerate(batch.columns[1:]):
            block[:, j] = _float32(column)
        self.rows = end

    def finish(self, label_column: str | None, files: int) -> Dataset:
        self._allocate(self.rows)
        values = np.asarray(_label_values(list(self.labels)))
        return Dataset(self.features, values[self.codes], self.feature_names, label_column, files)

    def _allocate(self, rows: int) -> None:
        # Nothing else refers to the arrays' memory, so resizing in place (realloc, which the
        # kernel does without copying large arrays) is safe.
        self.features.resize((rows, len(self.feature_names)), refcheck=False)
        self.codes.resize(rows, refcheck=False)


def _float32(column: pa.Array) -> np.ndarray:
    """A column's values as float32 (nulls as NaN), without copying when it has no nulls."""
    if column.type != pa.float32():
        column = column.cast(pa.float32(), safe=False)
    if column.null_count:
        return column.to_numpy(zero_copy_only=False)
    # Much cheaper than to_numpy(), which costs more than the copy itself for small batches.
    return np.frombuffer(column.buffers()[1], np.float32, len(column), column.offset * 4)


def _label_values(labels: list[Any]) -> list[Any]:
    """CSV labels are text: make them numbers when every one is a number ("0", "1" or "2.5")."""
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


def _csv_batches(path: Path, where: str) -> Batches:
    """Batches of a CSV file (.csv.gz decompressed) or FIFO; InputError on malformed rows."""
    # pa.input_stream decompresses .gz but cannot open a FIFO (it seeks); open() can.
    with open(path, "rb") if path.is_fifo() else pa.input_stream(str(path)) as source:
        names: list[str] = []
        first_row = 1
        for text in _text_blocks(source):
            names = names or _csv_feature_names(text, where)
            for batch in _parse_block(text, names, where, first_row).to_batches():
                yield first_row, batch
                first_row += batch.num_rows


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
            f"{where}, row 1: one column only; {CSV_RULES}, so a row needs at least two."
        )
    return [f"feature_{i}" for i in range(1, columns)]


def _parse_block(text: pa.Buffer, names: list[str], where: str, first_row: int) -> pa.Table:
    """Parse a block on every CPU; on bad input, InputError with the file's row number."""
    try:
        return _read_csv(text, names, parallel=True)
    except pa.ArrowInvalid:
        # A parallel parse splits the text at every newline, so it fails on a newline inside a
        # quoted value, and its errors carry no row number. A serial parse handles the first and
        # finds the second.
        try:
            return _read_csv(text, names, parallel=False)
        except pa.ArrowInvalid as error:
            raise InputError(_explain(error, where, first_row)) from error


def _read_csv(text: pa.Buffer, names: list[str], parallel: bool) -> pa.Table:
    return pcsv.read_csv(
        pa.BufferReader(text),
        read_options=pcsv.ReadOptions(column_names=[CSV_LABEL, *names], use_threads=parallel),
        parse_options=pcsv.ParseOptions(newlines_in_values=not parallel),
        convert_options=pcsv.ConvertOptions(
            strings_can_be_null=True,
            column_types={
                CSV_LABEL: pa.dictionary(pa.int32(), pa.string()),
                **dict.fromkeys(names, pa.float32()),
            },
        ),
    )


def _explain(error: pa.ArrowInvalid, where: str, first_row: int) -> str:
    """pyarrow's message in the words of this program's input rules, with file, row and column."""
    message = str(error)
    if match := _CONVERSION_ERROR.search(message):
        column, row, value = int(match[1]) + 1, first_row - 1 + int(match[2]), match[3]
        header = " (a header row?)" if row == 1 else ""
        return (
            f"{where}, row {row}, column {column}: {value!r} is not a number{header}. {CSV_RULES}."
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
            if not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            ):
                raise InputError(
                    f"{where}: column {name!r} is {kind}, but every column other than the "
                    f"label ({label!r}) must hold numbers."
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
