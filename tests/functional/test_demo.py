"""`make demo`'s script: train on test_dir, serve, predict payload.csv, print, stop."""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import ExitStack
from itertools import takewhile
from pathlib import Path

from conftest import require_tool
from processes import stop_group

LOCAL_TEST = Path(__file__).resolve().parents[2] / "local_test"
IRIS_CLASSES = {"setosa", "versicolor", "virginica"}


def test_demo_predicts_every_payload_row_even_when_port_8080_is_taken() -> None:
    require_tool("nginx")
    require_tool("curl")
    payload_rows = len((LOCAL_TEST / "payload.csv").read_text().splitlines())
    with ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        try:
            holder.bind(("127.0.0.1", 8080))
            holder.listen()
        except OSError:
            pass  # already taken by something else: the case under test all the same
        environ = {k: v for k, v in os.environ.items() if k != "PORT"}
        demo = subprocess.Popen(
            [str(LOCAL_TEST / "demo.sh")],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = demo.communicate(timeout=300)
        finally:
            # demo.sh stops its server as it exits, unless it is killed (by the timeout): then
            # the server is still in its session.
            stop_group(demo.pid)
            demo.wait()
    assert demo.returncode == 0, stderr[-3000:]
    # nginx's access log shares stdout and may follow the predictions.
    after = stdout.split("predictions for local_test/payload.csv:\n", 1)[1].splitlines()
    predictions = list(takewhile(lambda line: line in IRIS_CLASSES, after))
    assert len(predictions) == payload_rows, stdout[-3000:]
