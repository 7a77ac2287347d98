#!/usr/bin/env python3
"""A batch transform job, locally: every file of a folder through N instances of `serve`.

    transform.py INPUT_DIR OUTPUT_DIR [--instances N] [--content-type text/csv] [--accept TYPE]
        [--split-type Line|None] [--batch-strategy MultiRecord|SingleRecord]
        [--max-payload-mb M] [--max-concurrent-transforms C] [--join-source None|Input]
        [--endpoint URL ...]

It does what SageMaker does with an S3 prefix (the contract: /work/shared/contract/serving.md):
- each input file (an S3 object) goes whole to one instance: file i, in name order, to instance
  i mod N (SageMaker splits by object, never a file's lines across instances);
- SplitType=Line: a file's lines are sent as mini-batches of whole lines, each keeping its newline,
  up to MaxPayloadInMB (MultiRecord) or one line each (SingleRecord); a line longer than the limit
  fails the job; SplitType=None sends each file in one request;
- MaxConcurrentTransforms requests at a time per instance; it and MaxPayloadInMB come from each
  instance's GET /execution-parameters unless given (defaults 1 and 6 when it is not answered);
- AssembleWith=Line: `OUTPUT_DIR/<file>.out` holds the answers in input order, each followed by a
  newline; JoinSource=Input puts each input record before its answer: a CSV line and a CSV answer
  joined by a comma, a JSON object given a "SageMakerOutput" key, any other JSON value wrapped as
  {"SageMakerInput": ..., "SageMakerOutput": ...};
- any answer other than 200 fails the job: it stops, names the file, the lines and the answer, and
  exits 1. Only the files finished before then have their .out file.

The instances are `serve` processes started here (SAGEMAKER_BASE_DIR is the /opt/ml tree holding
the model), with SageMaker's batch variables set; or, with --endpoint (repeated), servers already
running, such as containers of the image. Blank lines are not records: they are skipped.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "container" / "decision_trees" / "serve"
MIB = 1024 * 1024
DEFAULT_PARAMETERS = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 6,
}
"""What SageMaker assumes when an instance does not answer /execution-parameters."""
STRATEGIES = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
START_SECONDS = 120
REQUEST_SECONDS = 600


class JobFailed(Exception):
    """The job cannot go on; the message says why, as SageMaker's FailureReason would."""


@dataclass(frozen=True)
class Job:
    content_type: str
    accept: str
    split_line: bool
    strategy: str | None
    """MULTI_RECORD or SINGLE_RECORD; None: as the instance's /execution-parameters says."""
    max_payload_mb: int | None
    max_concurrent: int | None
    join_input: bool


class Instance:
    """One model server, with a connection per thread of the job that talks to it."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.url = url
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_SECONDS)
            self._local.connection = connection
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise

    def parameters(self, job: Job) -> tuple[int, str, int]:
        """MaxConcurrentTransforms, BatchStrategy and MaxPayloadInMB for this instance."""
        answered = dict(DEFAULT_PARAMETERS)
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            status, body = self.request("GET", "/execution-parameters")
            if status == 200:
                answered.update(json.loads(body))
        return (
            job.max_concurrent or int(answered["MaxConcurrentTransforms"]),
            job.strategy or str(answered["BatchStrategy"]),
            job.max_payload_mb or int(answered["MaxPayloadInMB"]),
        )


def mini_batches(path: Path, job: Job, strategy: str, limit: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, body) of each request for `path`, in order."""
    if not job.split_line:
        body = path.read_bytes()
        if len(body) > limit:
            raise JobFailed(f"{path.name}: {len(body):,} bytes exceed MaxPayloadInMB ({limit:,})")
        yield 1, body
        return
    batch: list[bytes] = []
    size, first = 0, 1
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                line += b"\n"
            if len(line) > limit:
                raise JobFailed(
                    f"{path.name}: line {number} ({len(line):,} bytes) exceeds MaxPayloadInMB "
                    f"({limit:,} bytes)"
                )
            if batch and (strategy == "SINGLE_RECORD" or size + len(line) > limit):
                yield first, b"".join(batch)
                batch, size = [], 0
            if not batch:
                first = number
            batch.append(line)
            size += len(line)
    if batch:
        yield first, b"".join(batch)


def joined(request: bytes, answer: bytes, job: Job, where: str) -> bytes:
    """Each input record of `request` followed by its answer (JoinSource=Input)."""
    records = request.splitlines() if job.split_line else [request.rstrip(b"\n")]
    answers = answer.rstrip(b"\n").split(b"\n")
    if len(answers) != len(records):
        raise JobFailed(f"{where}: {len(answers)} answers for {len(records)} input records")
    if job.content_type == "text/csv" and job.accept == "text/csv":
        return b"\n".join(r + b"," + a for r, a in zip(records, answers, strict=True))
    out = []
    for record, output in zip(records, answers, strict=True):
        value, result = json.loads(record), json.loads(output)
        if isinstance(value, dict):
            out.append(json.dumps({**value, "SageMakerOutput": result}))
        else:
            out.append(json.dumps({"SageMakerInput": value, "SageMakerOutput": result}))
    return "\n".join(out).encode()


def predict(instance: Instance, job: Job, path: Path, first: int, body: bytes) -> bytes:
    last = first + body.count(b"\n") - 1
    where = f"{path.name} lines {first}-{last} on {instance.url}"
    try:
        status, answer = instance.request(
            "POST", "/invocations", body, **{"Content-Type": job.content_type, "Accept": job.accept}
        )
    except (OSError, http.client.HTTPException) as e:
        raise JobFailed(f"{where}: no answer: {e}") from None
    if status != 200:
        text = answer.decode(errors="replace").strip()[:1000]
        kind = "ClientError" if 400 <= status < 500 else "ServerError"
        raise JobFailed(f"{where}: {kind}: HTTP {status} from the model: {text}")
    return joined(body, answer, job, where) if job.join_input else answer


def transform_files(instance: Instance, job: Job, files: list[Path], output: Path) -> None:
    """Every file of `files` through `instance`, MaxConcurrentTransforms requests at a time (a
    file's last mini-batches overlap the next file's first), each file's answers written in order
    to OUTPUT/<name>.out, renamed into place once complete."""
    concurrency, strategy, payload_mb = instance.parameters(job)
    # In input order: a file's open output, then its requests; None closes the file.
    pending: collections.deque[tuple[Path, Future[bytes] | None]] = collections.deque()
    opened: dict[Path, BinaryIO] = {}

    def write_done(block: bool) -> None:
        # A bounded window: a large input is never read into memory at once.
        while pending and (block or len(pending) > 2 * concurrency or _ready(pending[0][1])):
            path, future = pending.popleft()
            partial = output / f".{path.name}.out.partial"
            if path not in opened:  # an empty input file has an empty .out file
                opened[path] = partial.open("wb")
            if future is None:
                opened.pop(path).close()
                partial.rename(output / f"{path.name}.out")
            else:
                opened[path].write(future.result() + b"\n")

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for path in files:
                for first, body in mini_batches(path, job, strategy, payload_mb * MIB):
                    pending.append((path, pool.submit(predict, instance, job, path, first, body)))
                    write_done(block=False)
                pending.append((path, None))
            write_done(block=True)
    except BaseException:
        for _, future in pending:
            if future is not None:
                future.cancel()
        for path, out in opened.items():
            out.close()
            (output / f".{path.name}.out.partial").unlink(missing_ok=True)
        raise


def _ready(future: Future[bytes] | None) -> bool:
    return future is None or future.done()


def run_job(input_dir: Path, output: Path, urls: list[str], job: Job) -> int:
    """Split the files over the instances by object and transform them; the number of files."""
    files = sorted(p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise JobFailed(f"no input files in {input_dir}")
    output.mkdir(parents=True, exist_ok=True)
    instances = [Instance(url) for url in urls]
    shares = [files[i :: len(instances)] for i in range(len(instances))]
    failures: list[BaseException] = []
    stop = threading.Event()

    def work(instance: Instance, share: list[Path]) -> None:
        try:
            transform_files(instance, job, share, output)
        except BaseException as e:  # reported by the main thread
            failures.append(e)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(inst, share), daemon=True)
        for inst, share in zip(instances, shares, strict=True)
        if share
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not stop.is_set():
        time.sleep(0.05)
    if failures:
        error = failures[0]
        raise error if isinstance(error, JobFailed) else JobFailed(f"{error!r}")
    return len(files)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_instances(count: int, job: Job, logs: Path) -> Iterator[list[str]]:
    """`count` native `serve` processes with SageMaker's batch environment; their URLs."""
    env = {
        **os.environ,
        "SAGEMAKER_BATCH": "true",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if job.max_payload_mb:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(job.max_payload_mb)
    if job.strategy:
        env["SAGEMAKER_BATCH_STRATEGY"] = job.strategy
    if job.max_concurrent:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(job.max_concurrent)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for index in range(count):
            port = free_port()
            with open(logs / f"instance-{index}.log", "ab") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, str(SERVE)],
                        env={**env, "SAGEMAKER_BIND_TO_PORT": str(port)},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for index, (process, url) in enumerate(zip(processes, urls, strict=True)):
            wait_ready(process, Instance(url), logs / f"instance-{index}.log")
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(35)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(process: subprocess.Popen[bytes], instance: Instance, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise JobFailed(f"serve exited with {process.returncode} before it answered:\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if instance.request("GET", "/ping")[0] == 200:
                return
        time.sleep(0.05)
    raise JobFailed(f"{instance.url} did not answer /ping within {START_SECONDS} s")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="the input folder (an S3 prefix's objects)")
    parser.add_argument("output", type=Path, help="where each <file>.out goes")
    parser.add_argument("--instances", type=int, default=1, help="InstanceCount (default 1)")
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default=None, help="default: the content type")
    parser.add_argument("--split-type", choices=("Line", "None"), default="Line")
    parser.add_argument("--batch-strategy", choices=tuple(STRATEGIES), default=None)
    parser.add_argument("--max-payload-mb", type=int, choices=range(1, 101), metavar="1-100")
    parser.add_argument("--max-concurrent-transforms", type=int, default=None)
    parser.add_argument("--join-source", choices=("None", "Input"), default="None")
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        help="a running server's URL, one per instance (then none is started here)",
    )
    arguments = parser.parse_args(argv)
    if arguments.instances < 1:
        parser.error("--instances must be at least 1")
    if not arguments.input.is_dir():
        parser.error(f"{arguments.input} is not a folder")
    return arguments


def main(argv: list[str]) -> int:
    arguments = parse(argv)
    job = Job(
        content_type=arguments.content_type,
        accept=arguments.accept or arguments.content_type,
        split_line=arguments.split_type == "Line",
        strategy=STRATEGIES.get(arguments.batch_strategy or ""),
        max_payload_mb=arguments.max_payload_mb,
        max_concurrent=arguments.max_concurrent_transforms,
        join_input=arguments.join_source == "Input",
    )
    started = time.monotonic()
    try:
        if arguments.endpoint:
            files = run_job(arguments.input, arguments.output, arguments.endpoint, job)
        else:
            with (
                tempfile.TemporaryDirectory(prefix="transform-") as logs,
                serve_instances(arguments.instances, job, Path(logs)) as urls,
            ):
                files = run_job(arguments.input, arguments.output, urls, job)
    except JobFailed as e:
        print(f"error: the transform job failed: {e}", file=sys.stderr)
        return 1
    print(
        f"transformed {files} files in {time.monotonic() - started:.2f} s into {arguments.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
