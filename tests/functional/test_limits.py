"""Limits of the real `serve`: bodies at the payload limit in every shape, slow and idle clients.

The bodies and the client load are the benchmarks' own (benchmarks/limits.py, slow_clients.py),
which measure time and memory; here only the outcome is checked: the right status, and the same
worker still serving.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from iris_model import save_iris_model
from serving import ROOT, Server, children, running

sys.path.insert(0, str(ROOT / "benchmarks"))
from limits import CASES
from slow_clients import Load

MIB = 1024 * 1024
EXPECTED = {
    "csv rows": 200,
    "csv shortest rows": 200,
    "csv one wide row": 400,
    "csv one long cell": 400,
    "json rows": 200,
    "json lines": 200,
    "json one wide row": 400,
    "json deepest": 400,
    "npy rows": 200,
    "npy one wide row": 400,
    "over the limit": 413,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base_dir = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(base_dir / "model", max_leaf_nodes=5)
    with running(
        base_dir, tmp_path_factory.mktemp("serve"), SAGEMAKER_MODEL_SERVER_WORKERS="1"
    ) as up:
        yield up


def test_every_case_of_the_benchmark_has_an_expected_status() -> None:
    assert set(EXPECTED) == set(CASES)


@pytest.mark.parametrize("case", list(EXPECTED))
def test_a_body_at_the_limit_is_answered_and_the_worker_survives(server: Server, case: str) -> None:
    content_type, make = CASES[case]
    workers = children(server.gunicorn_master)

    status, headers, body = server.request(
        "POST", "/invocations", make(6 * MIB), {"Content-Type": content_type}
    )

    assert status == EXPECTED[case], body[:200]
    if status >= 400:
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["error"]
    assert server.answers_ping()
    assert children(server.gunicorn_master) == workers


def test_idle_and_slow_clients_do_not_block_ping_or_predictions(server: Server) -> None:
    row = b"5.1,3.5,1.4,0.2\n"
    with Load(server.port, idle=1000, slow=50) as load:
        assert load.opened == 1050
        for _ in range(20):
            assert server.request("GET", "/ping", timeout=5)[0] == 200
        status, _, body = server.request(
            "POST", "/invocations", row, {"Content-Type": "text/csv"}, timeout=5
        )
        assert (status, body) == (200, b"setosa\n")
        assert load.closed == 0
