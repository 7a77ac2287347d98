"""Big CSV and JSON Lines bodies of an asynchronous endpoint, predicted and answered in blocks.

An asynchronous request can carry 1 GB (settings.ASYNC_MAX_PAYLOAD_MB). Held whole, a body takes
a worker up to 20 times its size (memory.BODY_FACTOR); read here, a worker holds about one block
at a time, whatever the body's size. The body is read from the request stream on the event loop,
cut at line ends into blocks of about BLOCK_BYTES, and each block decoded, passed through the hooks
(input_fn, predict_fn, output_fn) and encoded in the gevent threadpool (app._offload), so /ping
answers meanwhile.

Each block's answer goes to a temporary file, which is sent once the whole body is predicted.
HTTP sends the status first, and the answer cannot begin before the body is read: behind nginx, a
worker that had begun its answer never got the rest of the body (nginx sends a body, then reads
the answer, not both at once; the worker waited until the timeout). So a bad row anywhere is a
400 naming it, counted from the body's first line, and a hook's failure a 500, as on the
whole-body path; never a 200 whose answer stops short. The file costs disk, not
memory: the answer's size (0.6 times the body for the demo's labels, more for probabilities).
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np
from flask import Response
from werkzeug.exceptions import NotAcceptable, UnsupportedMediaType

from byoc import defaults, formats
from byoc.errors import InputError

Offload = Callable[[Callable[[], Any]], Any]
"""Runs a block's work off the event loop and returns its result (app._offload)."""

MIB = 1024 * 1024
STREAM_MIN_BYTES = 6 * MIB
"""Bodies this large (SageMaker's real-time limit) are read in blocks; smaller ones whole, as on a
real-time endpoint."""
BLOCK_BYTES = 4 * MIB
"""Read and predicted at a time: big enough that per-block costs vanish, small enough that a
worker's peak stays tens of MB (benchmarks/README.md "Asynchronous inference")."""
MAX_ROW_BYTES = 64 * MIB
"""The longest row of a streamed body: a row is read whole, so this bounds a worker's memory."""
READS = (formats.CSV, formats.JSON_LINES)
"""Line-based types, which can be cut between rows without parsing."""
ANSWERS = (formats.CSV, formats.JSON_LINES, formats.JSON)
"""Types that can be written before the number of rows is known (not NPY, whose header has it)."""

_ROW = re.compile(r"\Arow (\d+)")


def streamed(media_type: str, length: int | None) -> bool:
    """True when a body of this type and length is read in blocks."""
    return media_type in READS and length is not None and length >= STREAM_MIN_BYTES


def refusal(max_buffered_bytes: int) -> str:
    """Why a big body in a type read whole is refused (413)."""
    return (
        f"a body larger than {max_buffered_bytes} bytes must be CSV or JSON Lines, which are "
        "read in blocks; JSON and NPY bodies are read whole"
    )


def respond(
    stream: BinaryIO,
    length: int,
    content_type: formats.ContentType,
    columns: formats.Columns,
    predict: Callable[[np.ndarray, defaults.Request], Sequence[Any]],
    asked: defaults.Request,
    batch: bool,
    offload: Offload,
) -> Response:
    """The answer to a body of `length` bytes on `stream`, predicted a block at a time.

    `predict` turns decoded rows into records (the hooks); `offload` runs a block's work off the
    event loop. Whatever a block raises propagates, before any of the answer is sent.
    """
    if asked.accept not in ANSWERS:
        raise NotAcceptable(
            f"a body of {STREAM_MIN_BYTES} bytes or more is answered in "
            f"{', '.join(ANSWERS)}, not {asked.accept}"
        )
    charset = content_type.charset
    if charset is not None and not _splits_at_line_ends(charset):
        raise UnsupportedMediaType(
            f"a body of {STREAM_MIN_BYTES} bytes or more must be in a charset that writes a line "
            f"break as the byte 0x0A (UTF-8, Latin-1, ...), not {charset}"
        )
    answer = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _sent, once sent)
    try:
        for piece in _chunks(stream, length, content_type, columns, predict, asked, batch, offload):
            offload(functools.partial(answer.write, piece))
        size = answer.tell()
        answer.seek(0)
    except BaseException:
        answer.close()
        raise
    response = Response(_sent(answer), status=200, content_type=asked.accept)
    response.content_length = size
    return response


def _sent(answer: BinaryIO) -> Iterator[bytes]:
    """The answer file's contents, a piece at a time; the file is deleted when done."""
    with answer:
        while piece := answer.read(BLOCK_BYTES):
            yield piece


def _chunks(
    stream: BinaryIO,
    length: int,
    content_type: formats.ContentType,
    columns: formats.Columns,
    predict: Callable[[np.ndarray, defaults.Request], Sequence[Any]],
    asked: defaults.Request,
    batch: bool,
    offload: Offload,
) -> Iterator[bytes]:
    """The answer's pieces: one per block, and the closing of a JSON answer."""
    header = content_type.header
    # Rows are numbered as on the whole-body path: from the body's first line, the header's too.
    rows_before = 0
    json_object = asked.accept == formats.JSON and not batch
    first = True
    for block in _blocks(stream, length, content_type.media_type == formats.CSV):
        if block is None:
            raise InputError(
                f"row {rows_before + 1 + int(header)}: longer than {MAX_ROW_BYTES} bytes, "
                "the longest row of a body read in blocks"
            )

        work = functools.partial(
            _predict_block, block, content_type, columns, predict, asked, batch, header, rows_before
        )
        rows, answer = offload(work)
        rows_before += rows + int(header)
        header = False
        if json_object:
            answer = (b'{"predictions": [' if first else b", ") + answer
        elif batch and not first:
            # Batch transform joins records with its own newlines: none ends a block's answer.
            answer = b"\n" + answer
        first = False
        yield answer
    if json_object:
        yield b"]}"


def _predict_block(
    block: bytes,
    content_type: formats.ContentType,
    columns: formats.Columns,
    predict: Callable[[np.ndarray, defaults.Request], Sequence[Any]],
    asked: defaults.Request,
    batch: bool,
    header: bool,
    offset: int,
) -> tuple[int, bytes]:
    """One block's number of rows and its answer. An InputError's "row N" is counted from the
    body's first line: `offset` lines come before the block."""
    try:
        rows = formats.decode(block, content_type.media_type, columns, content_type.charset, header)
        records = predict(rows, asked)
    except InputError as e:
        message = _ROW.sub(lambda m: f"row {int(m[1]) + offset}", str(e), count=1)
        if offset:
            # The block's first row is no header row: the hint is for the body's first line.
            message = message.replace(formats.HEADER_HINT, "")
        raise InputError(message) from None
    if asked.accept == formats.JSON and not batch:
        # The records of {"predictions": [...]}, as formats.encode writes them: a record's JSON
        # holds no line break, so JSON Lines' breaks become the list's separators.
        return len(rows), formats.encode(records, formats.JSON_LINES, True).replace(b"\n", b", ")
    return len(rows), formats.encode(records, asked.accept, batch)


def _blocks(stream: BinaryIO, length: int, quoted: bool) -> Iterator[bytes | None]:
    """`length` bytes of `stream` in blocks that end at a line end (the last: at the body's end),
    outside a quoted CSV cell when `quoted`; None for a row longer than MAX_ROW_BYTES."""
    left = length
    carry = b""
    while left > 0:
        piece = stream.read(min(BLOCK_BYTES, left))
        if not piece:
            raise InputError(f"the body ended after {length - left} of its {length} bytes")
        left -= len(piece)
        data = carry + piece if carry else piece
        if left == 0:
            yield data
            return
        cut = _last_line_end(data, quoted)
        if cut == 0:
            if len(data) > MAX_ROW_BYTES:
                yield None
                return
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut]


def _last_line_end(data: bytes, quoted: bool) -> int:
    """The offset just past the last line break of `data` that ends a row, 0 if none does.

    In CSV a line break inside a quoted cell is part of the cell: a break ends a row when an even
    number of quotes precede it (an escaped quote, "", counts twice). Every block starts outside
    quotes, since it starts where the last one ended.
    """
    end = data.rfind(b"\n")
    if not quoted or end < 0:
        return end + 1
    quotes = data.count(b'"', 0, end)
    while end >= 0 and quotes % 2:
        before = data.rfind(b"\n", 0, end)
        quotes -= data.count(b'"', max(before, 0), end)
        end = before
    return end + 1


def _splits_at_line_ends(charset: str) -> bool:
    """True when text in `charset` can be cut between bytes 0x0A: it writes a line break and a
    quote as ASCII does, and no other character holds those bytes (so not UTF-16 or UTF-32)."""
    return '\n"'.encode(charset) == b'\n"'
