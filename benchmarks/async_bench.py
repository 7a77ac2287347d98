"""Asynchronous inference: big CSV bodies through the real `serve`, predicted in blocks.

    python benchmarks/async_bench.py [--sizes 100,1024]

For each size (MiB), a fresh `serve` of the demo tree (1 worker, SAGEMAKER_ASYNC_INFERENCE=true)
gets one CSV body of that size, generated as it is sent: 1,000 different iris-like rows repeated.
The answer is read as it comes and compared with the whole-body path's answer to those 1,000 rows
(a small request to the same server), repeated. It prints, per size: the time to the answer's end,
the body's rate, the worker's peak memory (VmHWM) above what it held before the request, and the
latency of the /ping requests sent every 50 ms meanwhile (median and highest). Prints a Markdown
table. Asserts nothing; tests/functional/test_async.py asserts what must hold.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from limits import peak_mib, worker_pid
from serve_bench import (
    PROGRAM,
    ROOT,
    answers_ping,
    free_port,
    print_rows,
    save_demo_model,
    serve_server,
)
from serve_bench import wait_for as wait

MIB = 1024 * 1024
NEWLINE = b"\n"
PIECE = 1 * MIB
"""Bytes the client sends and reads at a time."""


def pattern(rows: int = 1000, seed: int = 0) -> bytes:
    """`rows` different iris-like CSV rows, spread over the tree's leaves."""
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    values = rng.uniform(low, high, size=(rows, 4))
    return "".join(",".join(f"{v:.1f}" for v in row) + "\n" for row in values).encode()


def repeated(unit: bytes, times: int, middle: bytes = b"") -> Iterator[bytes]:
    """`unit` `times` times, with `middle` inserted halfway, in pieces of about PIECE bytes."""
    per_piece = max(1, PIECE // len(unit))
    for start in range(0, times, per_piece):
        count = min(per_piece, times - start)
        if middle and start <= times // 2 < start + count:
            half = times // 2 - start
            yield unit * half + middle + unit * (count - half)
        else:
            yield unit * count


@dataclass
class Pings:
    """GET /ping every 50 ms on its own connection, while a request runs."""

    port: int
    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Pings:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("GET", "/ping")
                ok = connection.getresponse().status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            if ok:
                self.seconds.append(time.monotonic() - started)
            else:
                self.failures += 1


@dataclass
class Answer:
    status: int
    digest: str
    """sha256 of the answer's body, as read."""
    length: int
    complete: bool
    """False when the connection ended before the answer did."""
    head: bytes
    """The answer's first bytes: an error's JSON."""


def post(port: int, pieces: Iterator[bytes], length: int, timeout: float = 3600) -> Answer:
    """POST a CSV body of `length` bytes sent piece by piece; read the answer the same way."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "text/csv", "Content-Length": str(length)}
        connection.request("POST", "/invocations", body=pieces, headers=headers)
        response = connection.getresponse()
        digest = hashlib.sha256()
        head, read, complete = b"", 0, True
        try:
            while piece := response.read(PIECE):
                digest.update(piece)
                head = head or piece[:200]
                read += len(piece)
        except http.client.IncompleteRead as e:
            digest.update(e.partial)
            read += len(e.partial)
            complete = False
        return Answer(response.status, digest.hexdigest(), read, complete, head)
    finally:
        connection.close()


def expected_digest(port: int, unit: bytes, times: int) -> tuple[str, int]:
    """The sha256 and length of the whole-body path's answer to `unit`, repeated `times` times."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/invocations", unit, {"Content-Type": "text/csv"})
        response = connection.getresponse()
        answer = response.read()
        assert response.status == 200, answer
    finally:
        connection.close()
    digest = hashlib.sha256()
    for _ in range(times):
        digest.update(answer)
    return digest.hexdigest(), len(answer) * times


def measure(base: Path, size_mib: int) -> dict[str, object]:
    unit = pattern()
    times = size_mib * MIB // len(unit)
    port = free_port()
    with serve_server(PROGRAM, base, None, 1, port, {"SAGEMAKER_ASYNC_INFERENCE": "true"}) as (
        serve,
    ):
        wait(lambda: answers_ping(port), 120, "serve to answer /ping")
        expected, _ = expected_digest(port, unit, times)
        worker = worker_pid(serve.pid)
        before = peak_mib(worker)
        started = time.monotonic()
        with Pings(port) as pings:
            answer = post(port, repeated(unit, times), len(unit) * times)
        seconds = time.monotonic() - started
        after = peak_mib(worker)
    return {
        "body": f"{len(unit) * times / MIB:.0f} MiB",
        "rows": f"{times * unit.count(NEWLINE):,}",
        "status": answer.status,
        "same answer": "yes" if answer.complete and answer.digest == expected else "NO",
        "seconds": f"{seconds:.1f}",
        "MiB/s": f"{len(unit) * times / MIB / seconds:.0f}",
        "worker peak": f"+{after - before:.0f} MiB",
        "/ping median": f"{statistics.median(pings.seconds) * 1000:.1f} ms",
        "/ping max": f"{max(pings.seconds) * 1000:.0f} ms",
        "/ping failed": pings.failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1024", help="body sizes in MiB (at most 1024)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="async-") as temporary:
        base = Path(temporary)
        base.chmod(0o755)
        save_demo_model(PROGRAM, ROOT / "tests", base / "model")
        rows = [measure(base, int(size)) for size in arguments.sizes.split(",")]
    print_rows(rows)


if __name__ == "__main__":
    main()
