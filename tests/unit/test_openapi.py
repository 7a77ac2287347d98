"""The OpenAPI document (container/decision_trees/openapi.json) is valid and matches the app.

The paths, media types and error bodies are compared with the app's own, so that the document
cannot drift from what the server does; tests/functional/test_fuzz.py checks it against the real
server.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask.testing import FlaskClient
from iris_model import demo_hooks, save_iris_model
from openapi_spec_validator import validate

from byoc import app, formats, settings

PROGRAM_DIR = Path(app.__file__).resolve().parents[1]
DOCUMENT_PATH = PROGRAM_DIR / "openapi.json"
DOCUMENT = json.loads(DOCUMENT_PATH.read_text())
STATUSES = {200, 400, 404, 405, 406, 409, 413, 415, 500, 503, 504, 507}
"""Every status the server answers with (409 and 507: loading a model on a multi-model endpoint)."""


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `$ref` names in this document."""
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = DOCUMENT["components"][kind][name]
    return node


INVOCATIONS = DOCUMENT["paths"]["/invocations"]["post"]
INVOKE = DOCUMENT["paths"]["/models/{name}/invoke"]["post"]


def component(name: str) -> dict[str, Any]:
    """A schema of the document as a JSON Schema, its references resolvable."""
    return {**DOCUMENT["components"]["schemas"][name], "components": DOCUMENT["components"]}


def error_body(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    jsonschema.validate(document, component("Error"))
    return document


def statuses(node: Any) -> set[int]:
    """Every status code named by a `responses` object anywhere in `node`, or by a component
    response's name (NotFound and MethodNotAllowed belong to no operation)."""
    found: set[int] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "responses":
                found |= {int(code) for code in value if code.isdigit()}
            found |= statuses(value)
    return found


def test_the_document_is_valid_openapi() -> None:
    validate(DOCUMENT)


def test_schemathesis_loads_an_operation_per_method_and_path() -> None:
    schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert operations == {
        ("GET", "/ping"),
        ("GET", "/execution-parameters"),
        ("POST", "/invocations"),
        ("GET", "/models"),
        ("POST", "/models"),
        ("GET", "/models/{name}"),
        ("DELETE", "/models/{name}"),
        ("POST", "/models/{name}/invoke"),
    }


def test_its_paths_are_the_apps() -> None:
    # MULTI_MODEL_PATHS names /models/{name} by its invoke path only.
    served = set(app.PATHS) | set(app.MULTI_MODEL_PATHS) | {"/models/{name}"}
    assert set(DOCUMENT["paths"]) == served


def test_a_model_is_invoked_as_invocations_are() -> None:
    assert INVOKE["requestBody"] == INVOCATIONS["requestBody"]
    assert {k: v for k, v in INVOKE["responses"].items() if k != "404"} == INVOCATIONS["responses"]


def test_every_request_media_type_and_alias_is_documented() -> None:
    documented = set(resolved(INVOCATIONS["requestBody"])["content"])
    assert documented == set(formats.MEDIA_TYPES) | set(formats.ALIASES)


def test_every_response_media_type_is_documented() -> None:
    assert set(resolved(INVOCATIONS["responses"]["200"])["content"]) == set(formats.MEDIA_TYPES)


def test_every_status_is_documented() -> None:
    responses = DOCUMENT["components"]["responses"]
    assert {"NotFound", "MethodNotAllowed"} <= set(responses)
    assert statuses(DOCUMENT["paths"]) | {404, 405} == STATUSES


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    directory = tmp_path_factory.mktemp("model")
    save_iris_model(directory, max_leaf_nodes=5)
    model_hooks = demo_hooks()
    model = model_hooks.model_fn(directory)

    def failing(*_: Any) -> Any:
        raise RuntimeError("a fault of the model's code")

    def predict_fn(data: Any, model: Any, request: Any) -> Any:
        # A row starting with 0 makes the model fail: a 500 from the same client.
        if data[0][0] == 0:
            failing()
        return model_hooks.predict_fn(data, model, request)

    broken = dataclasses.replace(model_hooks, predict_fn=predict_fn)
    resolved = settings.resolve({"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    return app.create_app(broken, model, model.columns, resolved).test_client()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"1,2\n", 400),
        ("GET", "/nowhere", {}, None, 404),
        ("GET", "/invocations", {}, None, 405),
        ("POST", "/invocations", {"Accept": "image/png"}, b"1,2,3,4\n", 406),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"1" * (7 << 20), 413),
        ("POST", "/invocations", {"Content-Type": "image/png"}, b"1,2,3,4\n", 415),
        ("POST", "/invocations", {"Content-Type": "text/csv"}, b"0,2,3,4\n", 500),
    ],
)
def test_the_apps_errors_have_the_documented_schema(
    client: FlaskClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    response = client.open(path, method=method, headers=headers, data=body)
    assert response.status_code == status
    assert response.content_type == "application/json"
    assert ("request_id" in error_body(response.data)) == (status >= 500)


def test_nginxs_own_errors_have_the_documented_schema() -> None:
    template = (PROGRAM_DIR / "nginx.conf").read_text()
    pages = re.findall(r"return (\d{3}) '(.*)\\n';", template)
    assert {int(status) for status, _ in pages} == {400, 405, 413, 503, 504}
    for _, page in pages:
        # nginx's variables hold tokens: a method, a request id.
        filled = re.sub(r"\$\w+", "TRACE", re.sub(r"\{\{ \w+ \}\}", "60", page))
        error_body(filled.encode())


def test_execution_parameters_have_the_documented_schema(client: FlaskClient) -> None:
    response = client.get("/execution-parameters")
    jsonschema.validate(response.get_json(), component("ExecutionParameters"))


def test_a_json_prediction_has_the_documented_schema(client: FlaskClient) -> None:
    for accept in ("application/json", "application/json;verbose"):
        response = client.post(
            "/invocations",
            data=b"[[5.1, 3.5, 1.4, 0.2]]",
            headers={"Accept": accept, "Content-Type": "application/json"},
        )
        assert response.status_code == 200
        jsonschema.validate(response.get_json(), component("Predictions"))


def test_serve_prints_the_document() -> None:
    printed = subprocess.run(
        [sys.executable, str(PROGRAM_DIR / "serve"), "--print-openapi"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert json.loads(printed) == DOCUMENT
