"""A channel's data as a float32 feature matrix and a label vector.

CSV files have no header and the label in the first column; Parquet files have the label in
their first column or in the column that the label_column hyperparameter names.

Files are read in parallel, one per CPU, and joined in order. pyarrow parses each file in
batches, which are copied into arrays that grow in place, so memory stays close to the size of
the result plus the files being read, and a Pipe mode FIFO is read as a stream. Features are
float32, the type scikit-learn's trees work in, so fitting makes no copy of them.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
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

CSV_BLOCK_BYTES = 1 << 20
"""How much CSV text pyarrow parses at a time: large enough to be fast, small enough to stream."""

PARQUET_BATCH_ROWS = 1 << 16

READERS = min(os.cpu_count() or 1, 8)
"""Files read at the same time: each takes a CPU, and memory for its rows until it is joined."""

PROGRESS_SECONDS = 10.0
"""How often a long read reports its progress."""

CSV_LABEL = "label"
"""The name given to the first column of CSV files, which have no header."""

CSV_RULES = "CSV input has no header, the label in the first column and numbers in the others"

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
    if parquet and channel.pipe:
        raise InputError(f'Channel "{channel.name}": Parquet cannot be read in Pipe mode.')
    if channel.pipe and "parquet" in channel.content_type:
        raise InputError(f'Channel "{channel.name}": Parquet cannot be read in Pipe mode.')
    if label_column is not None and not parquet:
        raise InputError(
            f"Hyperparameter label_column={label_column!r} applies to Parquet files only: "
            f"{CSV_RULES}."
        )
    batches_of = _parquet_batches_reader(label_column) if parquet else _csv_batches

    def read_file(path: Path) -> _Table | None:
        where = path.relative_to(channel.path.parent).as_posix()
        part = None
        last_report = time.monotonic()
        for first_row, batch in batches_of(path, where):
            if part is None:
                label = batch.schema.names[0] if parquet else None
                part = _Table(batch.schema.names[1:], label, where)
            part.append(first_row, batch, where)
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                log(f"{where}: {part.rows:,} rows read so far")
        return part

    table: _Table | None = None
    started = last_report = time.monotonic()
    for number, part in enumerate(_in_order(read_file, files), start=1):
        if part is not None:
            table = part if table is None else table.extend(part)
        if time.monotonic() - last_report >= PROGRESS_SECONDS:
            last_report = time.monotonic()
            rows = table.rows if table else 0
            log(f"{channel.name}: {rows:,} rows read so far ({number}/{len(files)} files)")
    if table is None or table.rows == 0:
        raise InputError(f'Channel "{channel.name}" has no rows: its {len(files)} files are empty.')
    dataset = table.finish(len(files))
    log(
        f"{channel.name}: read {dataset.rows:,} rows x {len(dataset.feature_names)} features "
        f"from {_count(len(files), 'file')} in {time.monotonic() - started:.2f} s"
    )
    return dataset


Batches = Iterator[tuple[int, pa.RecordBatch]]
"""The number of each batch's first row in its file (from 1), and the batch: label, features."""


def _in_order(read_file: Callable[[Path], _Table | None], files: list[Path]) -> Iterator:
    """The files' tables in the files' order, READERS of them being read at any time."""
    with ThreadPoolExecutor(READERS, thread_name_prefix="read") as pool:
        waiting = iter(files)
        reading: deque[Future] = deque(pool.submit(read_file, f) for f in islice(waiting, READERS))
        try:
            while reading:
                part = reading.popleft().result()
                reading.extend(pool.submit(read_file, f) for f in islice(waiting, 1))
                yield part
        finally:
            pool.shutdown(cancel_futures=True)


class _Table:
    """Rows appended batch by batch into arrays that grow in place (realloc, not copy-and-free)."""

    def __init__(self, feature_names: list[str], label_column: str | None, where: str) -> None:
        self.feature_names = feature_names
        self.label_column = label_column
        self.first_file = where
        self.features = np.empty((1 << 16, len(feature_names)), dtype=np.float32)
        self.codes = np.empty(1 << 16, dtype=np.int32)
        self.rows = 0
        self.label_codes: dict[Any, int] = {}

    def append(self, first_row: int, batch: pa.RecordBatch, where: str) -> None:
        labels = batch.column(0)
        if labels.null_count:
            row = first_row + pc.index(pc.is_null(labels), True).as_py()
            raise InputError(f"{where}, row {row}: the label is missing (empty or NA).")
        end = self._reserve(len(labels))
        block = self.features[self.rows : end]
        for j, column in enumerate(batch.columns[1:]):
            if column.type != pa.float32():
                column = column.cast(pa.float32(), safe=False)
            block[:, j] = column.to_numpy(zero_copy_only=False)
        if not pa.types.is_dictionary(labels.type):
            labels = pc.dictionary_encode(labels)
        lookup = self._codes_of(labels.dictionary.to_pylist())
        self.codes[self.rows : end] = lookup[labels.indices.to_numpy()]
        self.rows = end

    def extend(self, other: _Table) -> _Table:
        """Append the rows of another file's table."""
        if other.feature_names != self.feature_names:
            raise InputError(
                f"{other.first_file} has {len(other.feature_names)} features "
                f"({_short(other.feature_names)}), but {self.first_file} has "
                f"{len(self.feature_names)} ({_short(self.feature_names)}): every file of a "
                "channel needs the same columns."
            )
        end = self._reserve(other.rows)
        self.features[self.rows : end] = other.features[: other.rows]
        self.codes[self.rows : end] = self._codes_of(list(other.label_codes))[
            other.codes[: other.rows]
        ]
        self.rows = end
        return self

    def _codes_of(self, labels: list[Any]) -> np.ndarray:
        """This table's code of each label, new labels getting new codes."""
        codes = [self.label_codes.setdefault(label, len(self.label_codes)) for label in labels]
        return np.array(codes, dtype=np.int32)

    def _reserve(self, rows: int) -> int:
        """Make room for `rows` more rows; the end of the rows after them."""
        end = self.rows + rows
        if end > len(self.codes):
            # No view of these arrays outlives a call, so resizing them in place is safe.
            capacity = max(end, 2 * len(self.codes))
            self.features.resize((capacity, len(self.feature_names)), refcheck=False)
            self.codes.resize(capacity, refcheck=False)
        return end

    def finish(self, files: int) -> Dataset:
        self.features.resize((self.rows, len(self.feature_names)), refcheck=False)
        values = np.asarray(_label_values(list(self.label_codes)))
        labels = values[self.codes[: self.rows]]
        return Dataset(self.features, labels, self.feature_names, self.label_column, files)


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
    # pa.input_stream decompresses .gz but cannot open a FIFO (it seeks); open() can.
    with open(path, "rb") if path.is_fifo() else pa.input_stream(str(path)) as source:
        head = _head(source)
        if not head:
            return
        first_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
        columns = len(next(csv.reader([first_line])))
        if columns < 2:
            raise InputError(
                f"{where}, row 1: one column only; {CSV_RULES}, so a row needs at least two."
            )
        names = [f"feature_{i}" for i in range(1, columns)]
        reader = pcsv.open_csv(
            _Prepended(head, source),
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
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{where}: not a readable Parquet file: {e}") from e
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
