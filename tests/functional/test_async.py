"""An asynchronous endpoint (SAGEMAKER_ASYNC_INFERENCE=true) on the real `serve`: a body of
hundreds of MB predicted in blocks, in bounded memory, while /ping answers.

The bodies and the client are the benchmark's (benchmarks/async_bench.py), which measures time
and memory; here what must hold is checked: the same answer as the whole-body path, the worker's
peak far below the body's size, /ping answering throughout, a bad row's 400.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from iris_model import save_iris_model
from serving import ROOT, Server, children, running

sys.path.insert(0, str(ROOT / "benchmarks"))
from async_bench import Pings, expected_digest, pattern, post, repeated
from limits import peak_mib

MIB = 1024 * 1024
BODY_MIB = 150
WORKER_PEAK_MIB = 100
"""The most a worker may grow by for any streamed body: measured +41 MiB for 100 MiB and 1 GiB
bodies alike (benchmarks/README.md); held whole, 150 MiB of CSV would take gigabytes."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base_dir = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(base_dir / "model", max_leaf_nodes=5)
    with running(
        base_dir,
        tmp_path_factory.mktemp("serve"),
        SAGEMAKER_ASYNC_INFERENCE="true",
        SAGEMAKER_MODEL_SERVER_WORKERS="1",
    ) as up:
        yield up


def worker(server: Server) -> int:
    (pid,) = children(server.gunicorn_master)
    return pid


def test_a_big_csv_body_is_answered_in_bounded_memory_while_ping_answers(server: Server) -> None:
    unit = pattern()
    times = BODY_MIB * MIB // len(unit)
    expected, expected_length = expected_digest(server.port, unit, times)
    pid = worker(server)
    before = peak_mib(pid)

    with Pings(server.port) as pings:
        answer = post(server.port, repeated(unit, times), len(unit) * times, timeout=600)

    assert answer.status == 200, answer.head
    assert answer.complete and answer.length == expected_length
    assert answer.digest == expected
    assert peak_mib(pid) - before < WORKER_PEAK_MIB
    assert pings.failures == 0 and len(pings.seconds) > 0
    # nginx kept the body on disk, not in memory.
    assert any(
        line.get("source") == "nginx" and "buffered to a temporary file" in line["message"]
        for line in server.lines
    )
    assert worker(server) == pid


def test_a_bad_row_in_a_later_block_is_a_400_naming_it(server: Server) -> None:
    unit = pattern()
    times = 20 * MIB // len(unit)
    rows_per_unit = unit.count(b"\n")
    bad = b"5.1,3.5,oops,0.2\n"

    answer = post(server.port, repeated(unit, times, middle=bad), len(unit) * times + len(bad))

    assert answer.status == 400
    error = json.loads(answer.head)["error"]
    assert error.startswith(f'row {times // 2 * rows_per_unit + 1}: "oops" is not a number'), error
    assert server.answers_ping()


def test_a_json_body_too_big_to_hold_is_refused_before_it_is_read(server: Server) -> None:
    status, _, body = server.request(
        "POST",
        "/invocations",
        b"[" * (101 * MIB),
        {"Content-Type": "application/json"},
    )
    assert status == 413
    assert "must be CSV or JSON Lines" in json.loads(body)["error"]
