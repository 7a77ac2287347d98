"""A channel's data as a float32 feature matrix and a label vector.

CSV files have no header and the label in the first column; Parquet files have the label in
their first column or in the column that the label_column hyperparameter names.

The rows of every file are counted first (a quick scan, or Parquet's metadata), so the result
is allocated once; then files are read in parallel, one per CPU, each parsed by pyarrow in
batches copied straight into the rows reserved for it. Memory stays close to the size of the
result, however big the files. A Pipe mode FIFO, whose size is unknown, is read as a stream
into arrays that grow in place. Features are float32, the type scikit-learn's trees work in,
so fitting makes no copy of them.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from channels import Channel
from failure import InputError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)

CSV_BLOCK_BYTES = 1 << 19
"""CSV text parsed at a time: larger blocks are hardly faster but keep more memory in flight."""

PARQUET_BATCH_ROWS = 1 << 16

READERS = min(os.cpu_count() or 1, 8)
"""Files read at the same time, one per CPU."""

STREAM_FIRST_ROWS = 1 << 16
"""Rows allocated for a Pipe mode stream before it grows."""

PROGRESS_SECONDS = 10.0
"""How often a long read reports its progress."""

CSV_LABEL = "label"
"""The name given to the first column of CSV files, which have no header."""

CSV_RULES = "CSV input has no header, the label in the first column and numbers in the others"

try:
    # pyarrow's default allocator (mimalloc) keeps tens of MiB of the parser's freed memory,
    # which the fit cannot use; jemalloc, told to, gives it back to the system at once.
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(0)
except NotImplementedError:
    pass

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
    reader = _Reader(
        channel,
        _parquet_batches_reader(label_column) if parquet else _csv_batches,
        _parquet_rows if parquet else _csv_row_bound,
        log,
    )
    started = time.monotonic()
    table = reader.stream(files[0]) if channel.pipe else reader.files(files)
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


@dataclass
class _Part:
    """The rows of one file, at `start` in the table, with label codes of the file's own."""

    start: int
    rows: int
    labels: list[Any]


class _Reader:
    """Reads files into one table: in parallel, each file into rows reserved for it."""

    def __init__(
        self,
        channel: Channel,
        batches: Callable[[Path, str], Batches],
        row_bound: Callable[[Path, str], int],
        log: Callable[[str], None],
    ) -> None:
        self.channel = channel
        self.batches = batches
        self.row_bound = row_bound
        self.log = log

    def where(self, path: Path) -> str:
        """The file as error messages and the log name it: relative to input/data."""
        return path.relative_to(self.channel.path.parent).as_posix()

    def files(self, files: list[Path]) -> _Table | None:
        """Count the rows of every file (cheaply, an upper bound), then read them into place."""
        table = self._empty_table(files)
        if table is None:
            return None

        def bound(path: Path) -> int:
            return self.row_bound(path, self.where(path))

        def read(path: Path, start: int) -> _Part:
            return self._read(table, path, start, self.batches(path, self.where(path)))

        with ThreadPoolExecutor(READERS, thread_name_prefix="read") as pool:
            bounds = list(pool.map(bound, files))
            table.allocate(sum(bounds))
            parts = list(pool.map(read, files, np.cumsum([0, *bounds[:-1]]).tolist()))
        table.join(parts)
        return table

    def stream(self, path: Path) -> _Table | None:
        """Read a stream whose size nobody knows (a FIFO), growing the table as it comes."""
        batches = self.batches(path, self.where(path))
        first = next(batches, None)
        if first is None:
            return None
        table = _Table.of(first[1], self.where(path))
        table.allocate(STREAM_FIRST_ROWS)
        table.join([self._read(table, path, 0, chain([first], batches), grow=True)])
        return table

    def _empty_table(self, files: list[Path]) -> _Table | None:
        """A table with the columns of the first file that has rows."""
        for path in files:
            for _, batch in self.batches(path, self.where(path)):
                return _Table.of(batch, self.where(path))
        return None

    def _read(
        self, table: _Table, path: Path, start: int, batches: Batches, grow: bool = False
    ) -> _Part:
        """Write a file's rows into the table from `start`; `grow` the table if it is too small."""
        where = self.where(path)
        part = _Part(start, 0, [])
        codes: dict[Any, int] = {}
        last_report = time.monotonic()
        for first_row, batch in batches:
            table.check_columns(batch, where)
            labels = batch.column(0)
            if labels.null_count:
                row = first_row + pc.index(pc.is_null(labels), True).as_py()
                raise InputError(f"{where}, row {row}: the label is missing (empty or NA).")
            if not pa.types.is_dictionary(labels.type):
                labels = pc.dictionary_encode(labels)
            lookup = [
                codes.setdefault(label, len(codes)) for label in labels.dictionary.to_pylist()
            ]
            table.write(
                start + part.rows,
                batch.columns[1:],
                np.array(lookup, dtype=np.int32)[labels.indices.to_numpy()],
                grow,
            )
            part.rows += batch.num_rows
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                self.log(f"{where}: {part.rows:,} rows read so far")
        part.labels = list(codes)
        return part


class _Table:
    """The rows of a channel: float32 features and label codes, in arrays allocated once.

    Files write their rows into disjoint ranges from several threads, so the arrays never move
    while files are read; only a stream (one reader) makes them grow, in place.
    """

    def __init__(self, feature_names: list[str], label_column: str, first_file: str) -> None:
        self.feature_names = feature_names
        self.label_column = label_column
        self.first_file = first_file
        self.features = np.empty((0, len(feature_names)), dtype=np.float32)
        self.codes = np.empty(0, dtype=np.int32)
        self.rows = 0
        self.labels: list[Any] = []

    @classmethod
    def of(cls, batch: pa.RecordBatch, where: str) -> _Table:
        """An empty table with the columns of this batch: label first, then features."""
        return cls(batch.schema.names[1:], batch.schema.names[0], where)

    def allocate(self, rows: int) -> None:
        # Nothing refers to the arrays' memory when they are resized, so resizing in place
        # (realloc, which the kernel does without copying large arrays) is safe.
        self.features.resize((rows, len(self.feature_names)), refcheck=False)
        self.codes.resize(rows, refcheck=False)

    def check_columns(self, batch: pa.RecordBatch, where: str) -> None:
        names = batch.schema.names[1:]
        if names != self.feature_names:
            raise InputError(
                f"{where} has {len(names)} features ({_short(names)}), but {self.first_file} "
                f"has {len(self.feature_names)} ({_short(self.feature_names)}): every file of a "
                "channel needs the same columns."
            )

    def write(self, start: int, features: list[pa.Array], codes: np.ndarray, grow: bool) -> None:
        """Put rows at `start`: feature columns, and label codes of their file."""
        end = start + len(codes)
        if end > len(self.codes):
            if not grow:
                raise RuntimeError("a file has more rows than counted")
            self.allocate(max(end, 2 * len(self.codes)))
        block = self.features[start:end]
        for j, column in enumerate(features):
            if column.type != pa.float32():
                column = column.cast(pa.float32(), safe=False)
            block[:, j] = column.to_numpy(zero_copy_only=False)
        self.codes[start:end] = codes

    def join(self, parts: list[_Part]) -> None:
        """Give every label one code, and close the gaps of rows counted but not there."""
        codes: dict[Any, int] = {}
        self.rows = 0
        for part in parts:
            lookup = np.array([codes.setdefault(v, len(codes)) for v in part.labels], np.int32)
            end = self.rows + part.rows
            rows = slice(part.start, part.start + part.rows)
            self.codes[self.rows : end] = lookup[self.codes[rows]]
            if part.start != self.rows:
                self.features[self.rows : end] = self.features[rows]
            self.rows = end
        self.labels = list(codes)
        self.allocate(self.rows)

    def finish(self, label_column: str | None, files: int) -> Dataset:
        values = np.asarray(_label_values(self.labels))
        labels = values[self.codes]
        return Dataset(self.features, labels, self.feature_names, label_column, files)


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
    """Batches of a CSV file (.csv.gz decompressed) or FIFO; InputError on malformed rows.

    Each file is parsed serially (files are read in parallel instead), which also makes
    pyarrow's error messages carry the row number.
    """
    try:
        yield from _parse_csv(path, where)
    except pa.ArrowInvalid as e:
        raise InputError(_explain(e, where)) from e


def _parse_csv(path: Path, where: str) -> Batches:
    fifo = path.is_fifo()
    # pa.input_stream decompresses .gz but cannot open a FIFO (it seeks); open() can.
    with open(path, "rb") if fifo else pa.input_stream(str(path)) as source:
        head = _head(source)
        if not head:
            return
        columns = len(next(csv.reader(io.StringIO(head.decode("utf-8", errors="replace")))))
        if columns < 2:
            raise InputError(
                f"{where}, row 1: one column only; {CSV_RULES}, so a row needs at least two."
            )
        names = [f"feature_{i}" for i in range(1, columns)]
        # A file is opened again by pyarrow, which reads it without Python in the loop; a FIFO
        # cannot be read twice, so its head is put back in front of the rest of it.
        reader = pcsv.open_csv(
            _Prepended(head, source) if fifo else str(path),
            read_options=pcsv.ReadOptions(
                column_names=[CSV_LABEL, *names], block_size=CSV_BLOCK_BYTES, use_threads=False
            ),
            convert_options=pcsv.ConvertOptions(
                strings_can_be_null=True,
                column_types={
                    CSV_LABEL: pa.dictionary(pa.int32(), pa.string()),
                    **dict.fromkeys(names, pa.float32()),
                },
            ),
        )
        first_row = 1
        for batch in reader:
            yield first_row, batch
            first_row += batch.num_rows


def _csv_row_bound(path: Path, where: str) -> int:
    """The lines of a CSV file: its rows, or more when it has blank lines or quoted newlines."""
    lines, last = 0, b"\n"
    with pa.input_stream(str(path)) as source:
        while chunk := source.read(CSV_BLOCK_BYTES):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _head(source: BinaryIO) -> bytes:
    """The first bytes of the stream, up to at least its first line break (or its end)."""
    head = b""
    while b"\n" not in head:
        chunk = source.read(1 << 16)
        if not chunk:
            break
        head += chunk
    return head


class _Prepended:
    """A binary stream that yields `head` and then the rest of `source` (a FIFO cannot rewind)."""

    def __init__(self, head: bytes, source: BinaryIO) -> None:
        self._head = head
        self._source = source
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._source.read(size)
        if size < 0:
            data, self._head = self._head + self._source.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data

    def close(self) -> None:
        self.closed = True


def _explain(error: pa.ArrowInvalid, where: str) -> str:
    """pyarrow's message in the words of this program's input rules, with file, row and column."""
    message = str(error)
    if match := _CONVERSION_ERROR.search(message):
        column, row, value = int(match[1]) + 1, int(match[2]), match[3]
        header = " (a header row?)" if row == 1 else ""
        return (
            f"{where}, row {row}, column {column}: {value!r} is not a number{header}. {CSV_RULES}."
        )
    if match := _PARSE_ERROR.search(message):
        row, expected, got, text = match[1], match[2], match[3], match[4]
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


def _parquet_rows(path: Path, where: str) -> int:
    """The rows of a Parquet file, from its metadata."""
    return _open_parquet(path, where).metadata.num_rows


def _open_parquet(path: Path, where: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{where}: not a readable Parquet file: {e}") from e
