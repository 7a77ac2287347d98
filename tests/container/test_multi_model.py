"""The image as a multi-model endpoint: the label SageMaker requires, the MME API with models
mounted where SageMaker extracts them (/opt/ml/models/<name>/model), and 507 from the container's
real memory limit (docker's --memory, read from the cgroup)."""

from __future__ import annotations

import json
from pathlib import Path

from .engine import Engine
from .serving import Server, running_server

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
MULTI_MODEL = {"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


def mounted(model_dir: Path, *names: str) -> list[str]:
    return [f"--volume={model_dir}:/opt/ml/models/{name}/model:ro" for name in names]


def load(server: Server, name: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"model_name": name, "url": f"/opt/ml/models/{name}/model"}).encode()
    answer = server.post("/models", body, "application/json")
    return answer.status, json.loads(answer.body)


def test_the_image_declares_multi_model_support(engine: Engine, image: str) -> None:
    labels = json.loads(
        engine.run("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout
    )
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"


def test_models_load_invoke_and_unload_in_the_image(
    engine: Engine, image: str, model_dir: Path
) -> None:
    options = ["--memory=1g", *mounted(model_dir, "iris", "iris-2")]
    with running_server(engine, image, model_dir, MULTI_MODEL, docker_options=options) as server:
        assert load(server, "iris")[0] == 200
        assert load(server, "iris-2")[0] == 200
        assert load(server, "iris")[0] == 409
        listed = json.loads(server.get("/models").body)
        assert [model["modelName"] for model in listed["models"]] == ["iris", "iris-2"]
        for _ in range(4):  # the functional tests reach each worker by its own socket
            answer = server.post("/models/iris-2/invoke", ROWS, "text/csv", accept="text/csv")
            assert (answer.status, answer.body) == (200, b"setosa\nvirginica\n")
        assert server.request("DELETE", "/models/iris").status == 200
        for _ in range(4):
            assert server.post("/models/iris/invoke", ROWS, "text/csv").status == 404
        assert server.get("/ping").status == 200


def test_no_room_in_the_containers_memory_is_507(
    engine: Engine, image: str, model_dir: Path
) -> None:
    # 2 workers' peaks for a 6 MB request (2 x 132 MiB) and the server's own memory do not
    # leave room for a model in 300 MiB.
    options = ["--memory=300m", *mounted(model_dir, "iris")]
    with running_server(engine, image, model_dir, MULTI_MODEL, docker_options=options) as server:
        status, answer = load(server, "iris")
        assert status == 507, answer
        assert "of 300 MiB" in str(answer["error"])
        assert json.loads(server.get("/models").body) == {"models": []}
        assert server.get("/ping").status == 200
