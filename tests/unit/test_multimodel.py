"""byoc/multimodel.py through Flask's test client: two apps on one runtime directory stand for two
gunicorn workers sharing the registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from iris_model import demo_hooks, save_iris_model

from byoc import multimodel, settings
from byoc.app import create_app

CSV = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models") / "iris" / "model"
    save_iris_model(directory, max_leaf_nodes=5)
    return directory


def worker(runtime: Path, **environ: str) -> FlaskClient:
    environ = {
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SERVE_RUNTIME_DIR": str(runtime),
        **environ,
    }
    resolved = settings.resolve(environ)
    app = create_app(demo_hooks(), None, None, resolved)
    return app.test_client()


def load(client: FlaskClient, name: str, url: Path) -> tuple[int, dict]:
    answer = client.post("/models", json={"model_name": name, "url": str(url)})
    return answer.status_code, answer.get_json()


def test_a_model_loaded_by_one_worker_is_served_and_unloaded_by_every_worker(
    tmp_path: Path, model_dir: Path
) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    assert load(first, "iris", model_dir) == (200, {"status": "Model iris loaded"})
    answer = second.post("/models/iris/invoke", data=CSV, content_type="text/csv")
    assert (answer.status_code, answer.data) == (200, b"setosa\nvirginica\n")
    # The second worker's copy is recorded: nothing is left to reserve for it.
    entry = multimodel.Registry(tmp_path / "models").get("iris")
    assert entry is not None and entry.holders == (os.getpid(), os.getpid())
    assert load(second, "iris", model_dir)[0] == 409
    assert first.delete("/models/iris").status_code == 200
    assert second.post("/models/iris/invoke", data=CSV, content_type="text/csv").status_code == 404
    assert second.delete("/models/iris").status_code == 404


def test_pages_follow_the_token_in_name_order(tmp_path: Path, model_dir: Path) -> None:
    client = worker(tmp_path)
    for name in ("c", "a", "d", "b", "e"):
        assert load(client, name, model_dir)[0] == 200
    names, token = [], None
    while True:
        query = {"page_size": "2", **({"next_page_token": token} if token else {})}
        page = client.get("/models", query_string=query).get_json()
        names.append([model["modelName"] for model in page["models"]])
        token = page.get("nextPageToken")
        if token is None:
            break
    assert names == [["a", "b"], ["c", "d"], ["e"]]
    assert client.get("/models/c").get_json() == {"modelName": "c", "modelUrl": str(model_dir)}
    for query in ({"page_size": "0"}, {"page_size": "x"}, {"next_page_token": "%%%"}):
        assert client.get("/models", query_string=query).status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (json.dumps({"model_name": "x"}).encode(), 400),
        (json.dumps({"model_name": "a/b", "url": "/"}).encode(), 400),
        (json.dumps({"model_name": "x", "url": "/no/such/folder"}).encode(), 404),
    ],
)
def test_a_bad_load_request_is_refused_and_registers_nothing(
    tmp_path: Path, body: bytes, status: int
) -> None:
    client = worker(tmp_path)
    answer = client.post("/models", data=body, content_type="application/json")
    assert answer.status_code == status and "error" in answer.get_json()
    assert client.get("/models").get_json() == {"models": []}


def test_a_folder_without_a_model_is_400_and_the_name_stays_free(
    tmp_path: Path, model_dir: Path
) -> None:
    client = worker(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load(client, "iris", empty)[0] == 400
    assert load(client, "iris", model_dir)[0] == 200


def test_the_memory_limit_decides_507_with_the_other_workers_copies(
    tmp_path: Path, model_dir: Path
) -> None:
    used = multimodel.server_bytes() // multimodel.memory.MIB
    peaks = 2 * multimodel.memory.worker_mib(6)
    room = worker(tmp_path, BYOC_MME_MEMORY_LIMIT_MB=str(used + peaks + 64))
    assert load(room, "iris", model_dir)[0] == 200
    no_room = worker(tmp_path / "tight", BYOC_MME_MEMORY_LIMIT_MB=str(used + peaks - 64))
    status, answer = load(no_room, "iris", model_dir)
    assert status == 507 and answer["error"].startswith("no room")


def test_a_reservation_left_by_a_dead_worker_does_not_block_the_name(
    tmp_path: Path, model_dir: Path
) -> None:
    client = worker(tmp_path)
    registry = multimodel.Registry(tmp_path / "models")
    dead = multimodel.Entry("iris", str(model_dir), "old", "loading", 2**22 + 1, 0)
    registry.put(dead)
    assert load(client, "iris", model_dir)[0] == 200


def test_invocations_is_not_served_in_multi_model_mode(tmp_path: Path) -> None:
    answer = worker(tmp_path).post("/invocations", data=CSV, content_type="text/csv")
    assert answer.status_code == 404
    assert "/models/{name}/invoke" in answer.get_json()["error"]
