"""Slow and idle clients: does `/ping` (and a small prediction) stay fast while they hang on?

    python benchmarks/slow_clients.py [--seconds 10] [--idle 1000] [--slow 100]

A `serve` of the demo tree (a worker per CPU) is measured by wrk, /ping and 1-row /invocations in
turn at 4 connections, under each load:
- none;
- `--idle` connections opened and left silent (a client that connected and never sent a byte);
- `--slow` clients each trickling a 100,000-byte CSV body one byte at a time, every 10 ms
  (slowloris), after complete headers;
- both at once.
Prints the 99th percentile latency and requests per second of each run, and how many of the load's
connections the server had closed by the end. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from serve_bench import (
    POST_LUA,
    PROGRAM,
    ROOT,
    answers_ping,
    free_port,
    save_demo_model,
    serve_server,
    wait_for,
    wrk,
)

from byoc.cpus import available_cpus

SLOW_BODY_BYTES = 100_000
ROW = b"5.1,3.5,1.4,0.2\n"


class Load:
    """Idle and slow connections held open on a thread of their own until stopped."""

    def __init__(self, port: int, idle: int, slow: int) -> None:
        self.port, self.idle, self.slow = port, idle, slow
        self.closed = 0
        self.opened = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        self._ready.wait(60)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._idle()) for _ in range(self.idle)]
        tasks += [asyncio.create_task(self._trickle()) for _ in range(self.slow)]
        while self.opened < self.idle + self.slow:
            await asyncio.sleep(0.05)
        self._ready.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened += 1
        return reader, writer

    async def _idle(self) -> None:
        reader, writer = await self._open()
        try:
            if await reader.read(1) == b"":
                self.closed += 1
        finally:
            writer.close()

    async def _trickle(self) -> None:
        _, writer = await self._open()
        body = ROW * (SLOW_BODY_BYTES // len(ROW))
        head = (
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            writer.write(head.encode())
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            self.closed += 1
        finally:
            writer.close()


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=100)
    arguments = parser.parse_args()
    loads = {
        "none": (0, 0),
        f"{arguments.idle} idle": (arguments.idle, 0),
        f"{arguments.slow} slow": (0, arguments.slow),
        "both": (arguments.idle, arguments.slow),
    }
    print("| load | /ping p99 | /ping req/s | 1-row p99 | 1-row req/s | load closed |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as temporary:
        base = Path(temporary)
        base.chmod(0o755)
        save_demo_model(PROGRAM, ROOT / "tests", base / "model")
        bodies = base / "bodies"
        bodies.mkdir()
        (bodies / "one.csv").write_bytes(ROW)
        (bodies / "post.lua").write_text(POST_LUA)
        port = free_port()
        with serve_server(PROGRAM, base, None, available_cpus(), port):
            wait_for(lambda: answers_ping(port), 120, "serve to answer /ping")
            url = f"http://127.0.0.1:{port}"
            for name, (idle, slow) in loads.items():
                with Load(port, idle, slow) if idle or slow else nothing() as load:
                    ping = wrk(f"{url}/ping", arguments.seconds, 4)
                    one = wrk(f"{url}/invocations", arguments.seconds, 4, bodies / "one.csv")
                    closed = f"{load.closed} of {load.opened}" if load else "-"
                cells = [f"{ping.p99_ms:.1f} ms", f"{ping.requests_per_second:,.0f}"]
                cells += [f"{one.p99_ms:.1f} ms", f"{one.requests_per_second:,.0f}", closed]
                print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
