"""The real `serve`: nginx and gunicorn as processes, HTTP on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skops.io
from in_flight import stop_with_requests_in_flight
from iris_model import save_iris_model
from serving import ROOT, Server, children, running, start, wait_for

from byoc.cpus import available_cpus
from predictor import TRUSTED_TYPES
from training_job import Job

PAYLOAD = (ROOT / "local_test" / "payload.csv").read_bytes()
ROW = b"5.1,3.5,1.4,0.2\n"
LIMIT = 6 * 1024 * 1024


def csv_of(size: int) -> bytes:
    """Valid CSV rows filling about `size` bytes."""
    return ROW * (size // len(ROW))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(directory / "model", max_leaf_nodes=5)
    return directory


@pytest.fixture(scope="module")
def server(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(
        base_dir, tmp_path_factory.mktemp("serve"), SAGEMAKER_MODEL_SERVER_WORKERS="2"
    ) as up:
        yield up


@pytest.fixture
def own_server(base_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """A server a test may break."""
    running = start(base_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_it_listens_on_sagemaker_bind_to_port_and_answers_ping(server: Server) -> None:
    assert server.request("GET", "/ping")[0] == 200
    assert server.request("HEAD", "/ping")[0] == 200


def test_invocations_predict_the_payload_one_line_per_row(server: Server) -> None:
    status, headers, body = server.request(
        "POST", "/invocations", PAYLOAD, {"Content-Type": "text/csv"}
    )
    assert status == 200
    assert headers["Content-Type"] == "text/csv"
    lines = body.decode().split("\n")
    assert lines[-1] == ""
    assert len(lines[:-1]) == PAYLOAD.count(b"\n")
    assert set(lines[:-1]) <= {"setosa", "versicolor", "virginica"}


def test_a_chunked_request_is_accepted(server: Server) -> None:
    status, _, body = server.request(
        "POST", "/invocations", iter([ROW, ROW]), {"Content-Type": "text/csv"}
    )
    assert status == 200
    assert body == b"setosa\nsetosa\n"


def test_a_bad_row_is_a_json_400_through_nginx(server: Server) -> None:
    status, headers, body = server.request(
        "POST", "/invocations", b"1,2,3\n", {"Content-Type": "text/csv"}
    )
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "row 1: expected 4 features, got 3"}


@pytest.mark.parametrize(("path", "allowed"), [("/ping", "GET"), ("/invocations", "POST")])
def test_nginx_refuses_trace_with_json_and_the_allowed_methods(
    server: Server, path: str, allowed: str
) -> None:
    status, headers, body = server.request("TRACE", path)
    assert status == 405
    assert headers["Content-Type"] == "application/json"
    assert allowed in headers["Allow"]
    assert json.loads(body) == {"error": "TRACE is not allowed"}


def test_nginx_refuses_a_body_over_the_limit_with_json(server: Server) -> None:
    status, headers, body = server.request(
        "POST", "/invocations", b"1" * (LIMIT + 1), {"Content-Type": "text/csv"}
    )
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert "6291456 bytes" in json.loads(body)["error"]


def test_a_body_exactly_at_the_limit_is_predicted(server: Server) -> None:
    body = csv_of(LIMIT)
    assert len(body) == LIMIT
    status, _, answer = server.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200
    assert answer.count(b"\n") == body.count(b"\n")


def test_the_app_behind_nginx_enforces_the_same_limit(server: Server) -> None:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(server.runtime_dir / "gunicorn.sock"))

    connection = UnixConnection("localhost", timeout=30)
    connection.request("POST", "/invocations", b"1" * (LIMIT + 1), {"Content-Type": "text/csv"})
    response = connection.getresponse()
    assert response.status == 413
    assert "6291456 bytes" in json.loads(response.read())["error"]
    connection.close()


def test_execution_parameters_match_the_running_server(server: Server) -> None:
    status, _, body = server.request("GET", "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    workers = children(server.gunicorn_master)
    assert len(workers) == 2


def test_ping_answers_within_2_s_while_every_worker_is_busy_with_6_mb(server: Server) -> None:
    body = csv_of(LIMIT)
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        while not stop.is_set():
            statuses.append(
                server.request("POST", "/invocations", body, {"Content-Type": "text/csv"})[0]
            )

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for thread in loaders:
        thread.start()
    latencies = []
    try:
        wait_for(lambda: len(statuses) >= 2, 60, "the load to run")
        for _ in range(50):
            started = time.monotonic()
            assert server.request("GET", "/ping", timeout=2)[0] == 200
            latencies.append(time.monotonic() - started)
    finally:
        stop.set()
        for thread in loaders:
            thread.join()
    assert set(statuses) == {200}
    latencies.sort()
    print(
        f"/ping under load: median {latencies[25] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    assert latencies[-1] < 2


def test_batch_mode_answers_one_line_per_record_and_a_larger_limit(
    base_dir: Path, tmp_path: Path
) -> None:
    batch = start(
        base_dir,
        tmp_path,
        SAGEMAKER_BATCH="True",
        SAGEMAKER_MAX_PAYLOAD_IN_MB="20",
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
    )
    try:
        batch.wait_ready()
        status, _, body = batch.request(
            "POST", "/invocations", PAYLOAD, {"Content-Type": "text/csv"}
        )
        assert status == 200
        assert len(body.decode().split("\n")) == PAYLOAD.count(b"\n")
        assert not body.endswith(b"\n")
        big = csv_of(12 * 1024 * 1024)
        status, _, body = batch.request("POST", "/invocations", big, {"Content-Type": "text/csv"})
        assert status == 200
        assert body.count(b"\n") + 1 == big.count(b"\n")
        parameters = json.loads(batch.request("GET", "/execution-parameters")[2])
        assert parameters == {
            "MaxConcurrentTransforms": 2,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 20,
        }
    finally:
        assert batch.stop() == 0


def test_nothing_answers_before_gunicorn_can_so_there_is_no_502(
    base_dir: Path, tmp_path: Path
) -> None:
    starting = start(base_dir, tmp_path)
    answers: list[int] = []

    def first_answer() -> bool:
        try:
            answers.append(starting.request("GET", "/ping", timeout=5)[0])
        except ConnectionRefusedError:
            return False
        return True

    try:
        wait_for(first_answer, 60, "the first answer")
        status, _, _ = starting.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
        assert answers == [200]
        assert status == 200
    finally:
        starting.stop()


def test_sigterm_finishes_8_requests_in_flight_and_exits_0(own_server: Server) -> None:
    body = csv_of(4 * 1024 * 1024)

    def stop() -> None:
        own_server.process.send_signal(signal.SIGTERM)
        own_server.process.wait(30)

    stopping = stop_with_requests_in_flight(own_server.port, body, stop)

    assert own_server.process.returncode == 0, own_server.output
    assert [status for status, _ in stopping.answers] == [200] * 8
    assert max(at for _, at in stopping.answers) > stopping.began, "no request was in flight"
    assert own_server.left() == []


def test_a_clean_stop_logs_no_traceback(own_server: Server) -> None:
    """Each gevent worker used to print a TypeError from logging's teardown (gevent #2148)."""
    status, _, _ = own_server.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
    assert status == 200
    assert own_server.stop() == 0
    assert "Worker exiting" in own_server.output
    assert "Traceback" not in own_server.output
    assert "Exception ignored" not in own_server.output
    assert [x for x in own_server.lines if x["level"] in ("ERROR", "CRITICAL")] == []


def test_a_killed_worker_is_replaced(own_server: Server) -> None:
    master = own_server.gunicorn_master
    victim = children(master)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: victim not in children(master) and len(children(master)) == 2, 30, "a new worker"
    )
    status, _, _ = own_server.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
    assert status == 200
    assert own_server.process.poll() is None


def page_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_a_worker_reuses_its_memory_for_the_next_big_request(
    base_dir: Path, tmp_path: Path
) -> None:
    running = start(base_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        running.wait_ready()
        (worker,) = children(running.gunicorn_master)
        body, headers = csv_of(2 * 1024 * 1024), {"Content-Type": "text/csv"}
        for _ in range(3):
            assert running.request("POST", "/invocations", body, headers)[0] == 200
        before = page_faults(worker)
        for _ in range(5):
            assert running.request("POST", "/invocations", body, headers)[0] == 200
        # Handing the heap back to the kernel after each request costs ~1,600 faults per 2 MB.
        assert (page_faults(worker) - before) / 5 < 300
    finally:
        assert running.stop() == 0, running.output


@pytest.mark.parametrize("part", ["gunicorn_master", "nginx_master"])
def test_when_a_master_dies_serve_stops_every_process_either_started_and_exits_1(
    own_server: Server, part: str
) -> None:
    # A SIGKILLed nginx master used to leave its worker behind, listening on the port.
    pid = getattr(own_server, part)
    os.kill(pid, signal.SIGKILL)
    assert own_server.process.wait(30) == 1
    assert own_server.left() == []
    assert own_server.port_free()
    assert f"{part.split('_')[0]} exited with code -9" in own_server.output


@pytest.mark.parametrize("part", ["gunicorn_master", "nginx_master"])
def test_every_request_in_flight_when_a_master_dies_is_answered(
    own_server: Server, part: str
) -> None:
    """nginx's orphaned worker finishes its requests; gunicorn's orphaned workers exit at once,
    and nginx answers their requests with its JSON 503."""
    pid = getattr(own_server, part)

    def kill() -> None:
        os.kill(pid, signal.SIGKILL)
        own_server.process.wait(30)

    stopping = stop_with_requests_in_flight(own_server.port, csv_of(4 * 1024 * 1024), kill)

    assert own_server.process.returncode == 1, own_server.output
    assert len(stopping.answers) == 8
    allowed = {200} if part == "nginx_master" else {200, 503}
    assert {status for status, _ in stopping.answers} <= allowed
    assert own_server.left() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_stops_every_process_and_frees_the_port(
    own_server: Server, signum: signal.Signals
) -> None:
    """SIGINT is Ctrl-C, SIGHUP a closed terminal: neither reaches gunicorn or nginx, in process
    groups of their own, but through serve."""
    own_server.record()
    own_server.process.send_signal(signum)
    assert own_server.process.wait(30) == 0, own_server.output
    assert "stopping: no new requests" in own_server.output
    assert own_server.left() == []
    assert own_server.port_free()


def test_under_nohup_a_closed_terminal_does_not_stop_serve(base_dir: Path, tmp_path: Path) -> None:
    running = start(base_dir, tmp_path, via=("nohup",), SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        running.wait_ready()
        status = Path(f"/proc/{running.process.pid}/status").read_text()
        ignored = int(re.search(r"^SigIgn:\s*(\w+)$", status, re.MULTILINE)[1], 16)
        assert ignored & 1 << (signal.SIGHUP - 1), "SIGHUP is no longer ignored"
        running.process.send_signal(signal.SIGHUP)
        assert running.answers_ping()
    finally:
        assert running.stop() == 0, running.output
    assert running.left() == []


def test_a_second_ctrl_c_stops_at_once_without_waiting_for_requests_in_flight(
    base_dir: Path, tmp_path: Path
) -> None:
    predicting = tmp_path / "predicting"
    hooks = (
        "import time\n"
        "from byoc import defaults\n"
        "def predict_fn(data, model, request):\n"
        "    if data.shape[0] == 3:\n"
        f"        open({str(predicting)!r}, 'w').close()\n"
        "        time.sleep(3600)\n"
        "    return defaults.predict_fn(data, model, request)\n"
    )
    running = start(
        base_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1", **model_module(tmp_path, hooks)
    )

    def ask() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            running.request("POST", "/invocations", ROW * 3, {"Content-Type": "text/csv"})

    try:
        running.wait_ready()
        threading.Thread(target=ask, daemon=True).start()
        wait_for(predicting.exists, 10, "the request to reach predict_fn")
        running.process.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping: no new requests" in running.output, 10, "serve to stop")
        running.process.send_signal(signal.SIGINT)
        # Well within the 28 s that a stop waits for requests in flight.
        assert running.process.wait(10) == 0, running.output
        assert "interrupted again: killing" in running.output
        assert running.left() == []
    finally:
        running.stop()


def test_a_killed_serve_takes_gunicorn_nginx_and_their_workers_with_it(
    base_dir: Path, tmp_path: Path
) -> None:
    running = start(base_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        running.wait_ready()
        assert len(running.seen) == 4, [p.command for p in running.seen]
        running.process.kill()
        running.process.wait()
        # Both masters get SIGTERM (PR_SET_PDEATHSIG); gunicorn's waits for its worker.
        wait_for(lambda: running.left() == [], 30, "every process to stop")
        assert running.port_free()
    finally:
        running.stop()


def test_a_missing_model_makes_serve_exit_non_zero_saying_so(tmp_path: Path) -> None:
    empty = tmp_path / "opt_ml"
    empty.mkdir()
    failing = start(empty, tmp_path)
    assert failing.process.wait(60) != 0
    assert "no model" in failing.output
    assert "train a model first" in failing.output


def test_serve_predicts_what_scikit_learn_predicts_with_the_model_train_saves(
    tmp_path: Path,
) -> None:
    job = Job(tmp_path / "opt_ml").iris()
    job.hyperparameters({"max_depth": "3"})
    trained = job.run()
    assert trained.returncode == 0, trained.stdout + trained.stderr
    served = start(job.base, tmp_path)
    try:
        served.wait_ready()
        status, _, body = served.request(
            "POST", "/invocations", PAYLOAD, {"Content-Type": "text/csv"}
        )
    finally:
        served.stop()
    assert status == 200
    estimator = skops.io.load(job.model_dir / "model.skops", trusted=TRUSTED_TYPES)
    rows = np.loadtxt(PAYLOAD.decode().splitlines(), delimiter=",", dtype=np.float32, ndmin=2)
    assert body.decode().splitlines() == [str(label) for label in estimator.predict(rows)]


def model_module(tmp_path: Path, hooks: str) -> dict[str, str]:
    """The demo model module with `hooks` added, as the environment that makes serve use it."""
    demo = (ROOT / "container" / "decision_trees" / "predictor.py").read_text()
    path = tmp_path / "faulty_predictor.py"
    path.write_text(f"{demo}\n\n{hooks}\n")
    return {"BYOC_PREDICTOR": str(path)}


def test_a_model_fn_that_raises_makes_serve_exit_non_zero_naming_it(
    base_dir: Path, tmp_path: Path
) -> None:
    hooks = "def model_fn(model_dir):\n    raise RuntimeError('weights missing')\n"
    failing = start(base_dir, tmp_path, **model_module(tmp_path, hooks))
    assert failing.process.wait(60) != 0
    assert "model_fn" in failing.output
    assert "weights missing" in failing.output


def test_a_predict_fn_that_cannot_predict_stops_serve_before_it_listens(
    base_dir: Path, tmp_path: Path
) -> None:
    hooks = "def predict_fn(data, model, request):\n    raise KeyError('no such head')\n"
    failing = start(base_dir, tmp_path, **model_module(tmp_path, hooks))
    assert failing.process.wait(60) == 1
    assert "the model cannot predict: predict_fn" in failing.output
    assert "no such head" in failing.output
    assert "listening on port" not in failing.output


def test_a_worker_whose_probe_hangs_is_replaced_and_ping_waits_for_one_that_predicts(
    base_dir: Path, tmp_path: Path
) -> None:
    # The first worker to predict hangs for good, as after a fork that deadlocked OpenMP.
    marker = tmp_path / "hung-once"
    hooks = (
        "import os, time\n"
        "from byoc import defaults\n"
        "def predict_fn(data, model, request):\n"
        f"    if not os.path.exists({str(marker)!r}):\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "        time.sleep(3600)\n"
        "    return defaults.predict_fn(data, model, request)\n"
    )
    running = start(
        base_dir,
        tmp_path,
        SAGEMAKER_MODEL_SERVER_WORKERS="1",
        SAGEMAKER_MODEL_SERVER_TIMEOUT="3",
        **model_module(tmp_path, hooks),
    )
    try:
        running.wait_ready()
        assert "could not predict within 3 s" in running.output
        status, _, body = running.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
        assert (status, body) == (200, b"setosa\n")
    finally:
        assert running.stop() == 0, running.output


def test_a_hook_that_fails_on_one_request_is_a_500_logged_once_without_the_body(
    base_dir: Path, tmp_path: Path
) -> None:
    hooks = (
        "from byoc import defaults\n"
        "def input_fn(rows, model):\n"
        "    if rows.shape[0] == 3:\n"
        "        raise ZeroDivisionError('three rows')\n"
        "    return defaults.input_fn(rows, model)\n"
    )
    running = start(base_dir, tmp_path, **model_module(tmp_path, hooks))
    canary = b"5.123456789,3.5,1.4,0.2\n"
    try:
        running.wait_ready()
        status, _, body = running.request(
            "POST", "/invocations", canary * 3, {"Content-Type": "text/csv"}
        )
        assert status == 500
        answer = json.loads(body)
        assert answer["error"] == "the model failed in input_fn"
        status, _, body = running.request("POST", "/invocations", ROW, {"Content-Type": "text/csv"})
        assert (status, body) == (200, b"setosa\n")
    finally:
        assert running.stop() == 0, running.output
    app_lines = [x for x in running.lines if x["source"] == "app"]
    (failure,) = [x for x in app_lines if x["request_id"] == answer["request_id"]]
    assert failure["message"] == "request failed in input_fn"
    assert failure["error"] == "ZeroDivisionError"
    assert "5.123456789" not in running.output


def test_each_worker_gets_its_share_of_the_cpus_for_openmp(server: Server) -> None:
    for worker in children(server.gunicorn_master):
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert f"OMP_NUM_THREADS={max(1, available_cpus() // 2)}".encode() in environ
