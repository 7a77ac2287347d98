"""Resource limits: the largest bodies of each shape one worker takes, with its peak memory.

    python benchmarks/limits.py [--cases NAME,...] [--sizes 6,100]

For each case a fresh `serve` of the demo tree (1 worker; SAGEMAKER_MAX_PAYLOAD_IN_MB and, above
6 MB, SAGEMAKER_BATCH=true as in a batch transform job) gets one body that fills the payload limit
with one shape: the most rows of CSV, JSON, JSON Lines and NPY, the widest row, the deepest JSON
nesting, and one byte over the limit. It prints, per case: the status, the time to the answer,
the worker's peak memory (VmHWM) above what it held before the request, and whether the same
worker still answers /ping afterwards (a killed worker would be replaced under a new pid). Prints
a Markdown table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from serve_bench import (
    PROGRAM,
    ROOT,
    answers_ping,
    free_port,
    print_rows,
    save_demo_model,
    serve_server,
    tree,
)
from serve_bench import wait_for as wait

MIB = 1024 * 1024
ROW = b"5.1,3.5,1.4,0.2\n"
JSON_ROW = b"[5.1,3.5,1.4,0.2]"


def repeat(unit: bytes, size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """`head`, then `unit` as many times as fit in `size` bytes with `tail`, then `tail`."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


def npy_rows(size: int, width: int) -> bytes:
    rows = max(1, (size - 128) // (8 * width))
    buffer = io.BytesIO()
    np.save(buffer, np.full((rows, width), 1.5), allow_pickle=False)
    return buffer.getvalue()


CASES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "csv rows": ("text/csv", lambda size: repeat(ROW, size)),
    "csv shortest rows": ("text/csv", lambda size: repeat(b"0,0,0,0\n", size)),
    "csv one wide row": ("text/csv", lambda size: repeat(b"0,", size, tail=b"0\n")),
    "csv one long cell": ("text/csv", lambda size: repeat(b"9", size, tail=b",1,2,3\n")),
    "json rows": (
        "application/json",
        lambda size: repeat(JSON_ROW + b",", size, b"[", b"[0,0,0,0]]"),
    ),
    "json lines": ("application/jsonlines", lambda size: repeat(JSON_ROW + b"\n", size)),
    "json one wide row": ("application/json", lambda size: repeat(b"0,", size, b"[", b"0]")),
    "json deepest": ("application/json", lambda size: repeat(b"[", size)),
    "npy rows": ("application/x-npy", lambda size: npy_rows(size, 4)),
    "npy one wide row": ("application/x-npy", lambda size: npy_rows(size, size // 8 - 16)),
    "over the limit": ("text/csv", lambda size: repeat(ROW, size + len(ROW))),
}


def worker_pid(serve_pid: int) -> int:
    """The gunicorn worker: a python process two levels below serve, not the master."""
    for pid in tree(serve_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            grandparent_stat = Path(f"/proc/{parent}/stat").read_text()
        except (OSError, ValueError):
            continue
        grandparent = int(grandparent_stat.rsplit(")", 1)[1].split()[1])
        if b"gunicorn" in command and grandparent == serve_pid:
            return pid
    raise RuntimeError("no gunicorn worker found")


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def post(port: int, body: bytes, content_type: str) -> tuple[int, float, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.monotonic()
    connection.request("POST", "/invocations", body, {"Content-Type": content_type})
    response = connection.getresponse()
    answer = response.read()
    seconds = time.monotonic() - started
    connection.close()
    detail = answer[:80].decode(errors="replace") if response.status >= 400 else ""
    return response.status, seconds, detail


def measure(base: Path, name: str, size_mb: int) -> dict[str, object]:
    content_type, make = CASES[name]
    body = make(size_mb * MIB)
    port = free_port()
    if size_mb > 6:
        extra = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(size_mb), "SAGEMAKER_BATCH": "true"}
    else:
        extra = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(size_mb)}
    with serve_server(PROGRAM, base, None, 1, port, extra) as (serve,):
        wait(lambda: answers_ping(port), 120, "serve to answer /ping")
        worker = worker_pid(serve.pid)
        before = peak_mib(worker)
        status, seconds, detail = post(port, body, content_type)
        after = peak_mib(worker) if Path(f"/proc/{worker}").exists() else float("nan")
        alive = answers_ping(port) and worker_pid(serve.pid) == worker
    return {
        "case": name,
        "limit": f"{size_mb} MB",
        "body": f"{len(body) / MIB:.1f} MiB",
        "status": status,
        "seconds": f"{seconds:.2f}",
        "peak": f"+{after - before:.0f} MiB",
        "worker": "same" if alive else "REPLACED",
        "detail": detail.strip().replace("|", "/"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--sizes", default="6,100", help="payload limits in MB (6 to 100)")
    arguments = parser.parse_args()
    names = [n.strip() for n in arguments.cases.split(",") if n.strip()]
    sizes = [int(s) for s in arguments.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="limits-") as temporary:
        base = Path(temporary)
        base.chmod(0o755)
        save_demo_model(PROGRAM, ROOT / "tests", base / "model")
        rows = [measure(base, name, size) for size in sizes for name in names]
    print_rows(rows)


if __name__ == "__main__":
    main()
