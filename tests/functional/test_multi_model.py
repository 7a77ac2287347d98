"""SageMaker's multi-model API (byoc/multimodel.py) through the real serve: nginx, 2 gunicorn
workers, models loaded, invoked and unloaded while serving."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from iris_model import save_iris_model
from openapi_document import DOCUMENT
from serving import ROOT, Server, running, wait_for

PAYLOAD = (ROOT / "local_test" / "payload.csv").read_bytes()
MIB = 1024 * 1024
DELAY_MODULE = """
import time
from pathlib import Path

import numpy
from byoc import defaults

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def estimator():
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(random_state=0)


def model_fn(model_dir: Path):
    # A slow load, for the tests: the seconds in the model folder's file "delay".
    delay = model_dir / "delay"
    if delay.exists():
        time.sleep(float(delay.read_text()))
    model = defaults.model_fn(model_dir, TRUSTED_TYPES)
    # A big model, for the tests: the MiB in the file "ballast", held by the model.
    ballast = model_dir / "ballast"
    if ballast.exists():
        array = numpy.ones(int(ballast.read_text()) * 2**20, dtype=numpy.uint8)
        object.__setattr__(model, "ballast", array)  # defaults.Model is frozen
    return model
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folders as SageMaker extracts them: /opt/ml/models/<name>/model."""
    root = tmp_path_factory.mktemp("models")
    for name, leaves in (("a", 3), ("b", 5), ("c", 8), ("slow", 5), ("big", 5)):
        save_iris_model(root / name / "model", max_leaf_nodes=leaves)
    (root / "slow" / "model" / "delay").write_text("4")
    (root / "big" / "model" / "ballast").write_text("64")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("opt_ml")
    module = base / "predictor.py"
    module.write_text(DELAY_MODULE)
    with running(
        base,
        tmp_path_factory.mktemp("serve"),
        SAGEMAKER_MULTI_MODEL="true",
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
        BYOC_PREDICTOR=str(module),
    ) as up:
        yield up


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


def invoke_each_worker(server: Server, name: str) -> list[int]:
    """POST /models/<name>/invoke to each gunicorn worker by its own socket (nginx's upstream):
    each status."""
    statuses = []
    for socket_path in sorted(server.runtime_dir.glob("worker-*.sock")):
        connection = UnixConnection(socket_path)
        try:
            headers = {"Content-Type": "text/csv"}
            connection.request("POST", f"/models/{name}/invoke", PAYLOAD, headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            connection.close()
    return statuses


def group_pss(group: int) -> int:
    """The PSS of every process in the process group, in bytes (what multimodel.py measures)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except (OSError, ValueError, IndexError):
            continue
        total += sum(
            int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")
        )
    return total


def load(server: Server, models: Path, name: str, url: Path | None = None) -> tuple[int, dict]:
    """POST /models for `name`, in `models`/<name>/model unless at `url`."""
    url = url or models / name / "model"
    body = json.dumps({"model_name": name, "url": str(url)}).encode()
    status, _, answer = server.request(
        "POST", "/models", body, {"Content-Type": "application/json"}
    )
    return status, json.loads(answer)


def invoke(server: Server, name: str, accept: str = "text/csv", body: bytes = PAYLOAD) -> tuple:
    status, headers, answer = server.request(
        "POST", f"/models/{name}/invoke", body, {"Content-Type": "text/csv", "Accept": accept}
    )
    return status, headers.get("Content-Type"), answer


def unload_all(server: Server) -> None:
    status, _, body = server.request("GET", "/models?page_size=100")
    assert status == 200
    for model in json.loads(body)["models"]:
        server.request("DELETE", f"/models/{model['modelName']}")


def test_load_list_invoke_reload_unload(server: Server, models: Path) -> None:
    for name in ("a", "b", "c"):
        assert load(server, models, name)[0] == 200
    assert load(server, models, "b") == (409, {"error": "model 'b' is already loaded"})

    status, _, body = server.request("GET", "/models/b")
    assert (status, json.loads(body)) == (
        200,
        {"modelName": "b", "modelUrl": str(models / "b" / "model")},
    )
    pages, token = [], ""
    while True:
        query = f"?page_size=2&next_page_token={token}" if token else "?page_size=2"
        status, _, body = server.request("GET", f"/models{query}")
        page = json.loads(body)
        pages.append([model["modelName"] for model in page["models"]])
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert pages == [["a", "b"], ["c"]]

    status, content_type, answer = invoke(server, "a")
    assert (status, content_type) == (200, "text/csv")
    assert len(answer.splitlines()) == len(PAYLOAD.splitlines())
    status, content_type, answer = invoke(server, "c", accept="application/json")
    assert (status, content_type) == (200, "application/json")
    assert len(json.loads(answer)["predictions"]) == len(PAYLOAD.splitlines())
    # The same errors as /invocations: a bad row is the client's.
    status, _, answer = invoke(server, "b", body=b"1,2,oops,4\n")
    assert status == 400 and b"oops" in answer

    assert invoke_each_worker(server, "b") == [200, 200]
    assert server.request("DELETE", "/models/b")[0] == 200
    assert server.request("DELETE", "/models/b")[0] == 404
    assert server.request("GET", "/models/b")[0] == 404
    # Whichever worker takes it, an unloaded model is gone.
    assert invoke_each_worker(server, "b") == [404, 404]
    assert invoke(server, "b")[0] == 404
    assert load(server, models, "b")[0] == 200
    assert invoke(server, "b")[0] == 200
    unload_all(server)


def test_every_worker_answers_for_every_model_under_concurrent_loads_and_invokes(
    server: Server, models: Path
) -> None:
    assert load(server, models, "a")[0] == 200
    with ThreadPoolExecutor(8) as pool:
        loads = [pool.submit(load, server, models, name) for name in ("b", "c")]
        invokes = [pool.submit(invoke, server, "a") for _ in range(40)]
        assert [f.result()[0] for f in loads] == [200, 200]
        assert {f.result()[:2] for f in invokes} == {(200, "text/csv")}
        answers = [pool.submit(invoke, server, name) for name in ("b", "c") * 20]
        assert {f.result()[0] for f in answers} == {200}
    for name in ("a", "b", "c"):
        assert invoke_each_worker(server, name) == [200, 200]
    unload_all(server)


def test_ping_and_other_models_answer_during_a_slow_load(server: Server, models: Path) -> None:
    assert load(server, models, "a")[0] == 200
    slow = threading.Thread(target=load, args=(server, models, "slow"))
    slow.start()
    try:
        time.sleep(0.5)
        assert slow.is_alive()
        for _ in range(10):
            started = time.monotonic()
            assert server.request("GET", "/ping")[0] == 200
            assert invoke(server, "a")[0] == 200
            assert time.monotonic() - started < 0.5
        # A second load of the same name while it loads is refused, and it is not yet invocable.
        assert load(server, models, "slow")[0] == 409
        assert invoke(server, "slow")[0] == 404
    finally:
        slow.join()
    assert invoke(server, "slow")[0] == 200
    unload_all(server)


def test_an_unloaded_model_is_dropped_by_every_worker_and_its_memory_freed(
    server: Server, models: Path
) -> None:
    group = os.getpgid(server.gunicorn_master)
    before = group_pss(group)
    assert load(server, models, "big")[0] == 200
    assert invoke_each_worker(server, "big") == [200, 200]
    held = group_pss(group)
    assert held - before > 2 * 60 * MIB
    assert server.request("DELETE", "/models/big")[0] == 200
    # Within a second or so, even in the worker that gets no request after the unloading.
    wait_for(lambda: group_pss(group) - before < 20 * MIB, 5, "both workers to free 64 MiB")


def test_no_room_is_507_and_registers_nothing(
    models: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("opt_ml")
    # A limit below what the server itself uses: the documented override of the cgroup's.
    with running(
        base,
        tmp_path_factory.mktemp("serve"),
        SAGEMAKER_MULTI_MODEL="true",
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
        BYOC_MME_MEMORY_LIMIT_MB="64",
    ) as server:
        status, answer = load(server, models, "a")
        assert status == 507 and answer["error"].startswith("no room")
        assert json.loads(server.request("GET", "/models")[2]) == {"models": []}
        assert invoke(server, "a")[0] == 404
        assert server.request("GET", "/ping")[0] == 200


def test_the_local_script_loads_a_folder_of_archives_as_sagemaker_does(
    server: Server, models: Path, tmp_path: Path
) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    for name in ("a", "b"):
        # As train's model.tar.gz: the model folder's files at the archive's root.
        with tarfile.open(archives / f"tree-{name}.tar.gz", "w:gz") as tar:
            for path in (models / name / "model").iterdir():
                tar.add(path, arcname=path.name)
    extracted = tmp_path / "opt_ml_models"

    def load_folder() -> subprocess.CompletedProcess[str]:
        script = ROOT / "local_test" / "load_models.py"
        return subprocess.run(
            [sys.executable, str(script), str(archives), str(extracted)],
            env={**os.environ, "PORT": str(server.port)},
            capture_output=True,
            text=True,
            check=False,
        )

    done = load_folder()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'tree-a: 200 {"status":"Model tree-a loaded"}',
        'tree-b: 200 {"status":"Model tree-b loaded"}',
    ]
    assert (extracted / "tree-a" / "model" / "metadata.json").is_file()
    assert invoke(server, "tree-b")[0] == 200
    # Loaded again: SageMaker's 409, and the script says so.
    again = load_folder()
    assert again.returncode == 1 and "tree-a: 409" in again.stdout
    unload_all(server)


def test_a_model_trained_by_train_for_an_example_is_loaded_and_invoked(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Any model module serves its models alike: the random forest example, trained by `train`."""
    example = ROOT / "examples" / "random_forest"
    job = tmp_path_factory.mktemp("job")
    shutil.copytree(example / "test_dir", job, dirs_exist_ok=True)
    module = {"BYOC_PREDICTOR": str(example / "predictor.py")}
    trained = subprocess.run(
        [sys.executable, str(ROOT / "container" / "decision_trees" / "train")],
        env={**os.environ, **module, "SAGEMAKER_BASE_DIR": str(job)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr
    payload = (example / "payload.csv").read_bytes()
    with running(
        tmp_path_factory.mktemp("opt_ml"),
        tmp_path_factory.mktemp("serve"),
        SAGEMAKER_MULTI_MODEL="true",
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
        **module,
    ) as server:
        assert load(server, job, "forest", url=job / "model")[0] == 200
        for _ in range(4):
            status, _, answer = invoke(server, "forest", "application/json", payload)
            assert status == 200, answer
            assert len(json.loads(answer)["predictions"]) == len(payload.splitlines())


MME_SCHEMA = DOCUMENT.include(path_regex="^/models")


@MME_SCHEMA.parametrize()
@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    suppress_health_check=list(HealthCheck),
)
def test_the_multi_model_api_answers_as_its_openapi_document_says(
    server: Server, case: Any
) -> None:
    # Random names and folders: nothing the other tests load is touched, nothing new is loaded.
    base_url = f"http://127.0.0.1:{server.port}"
    response = case.call(base_url=base_url)
    # Not positive_data_acceptance: a load the document allows still needs a real model folder.
    case.validate_response(
        response,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        transport_kwargs={"base_url": base_url},
    )
