"""The walkthrough with the image: its local cells train and serve with `docker run`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import run_notebook
from nbclient.exceptions import CellExecutionError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outputs(notebook: Any) -> str:
    return "".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_the_walkthrough_trains_and_serves_in_the_image_when_the_engine_has_it(
    image: str, docker_env: dict[str, str], tmp_path: Path
) -> None:
    environ = {
        **docker_env,
        "WALKTHROUGH_IMAGE": image,
        "WALKTHROUGH_PORT": str(free_port()),
        "WALKTHROUGH_WORK_DIR": str(tmp_path),
        "RUN_ON_SAGEMAKER": "",
    }
    try:
        notebook = run_notebook.run(environ=environ)
    except CellExecutionError as error:
        log = tmp_path / "serve.log"
        server = log.read_text() if log.exists() else "(no server log)"
        pytest.fail(f"{error}\nthe server's log:\n{server}", pytrace=False)
    printed = outputs(notebook)
    assert f"running in the image {image}" in printed
    assert "validation:accuracy=" in printed
    assert "['metadata.json', 'model.skops', 'tree.npz']" in printed
    assert "200 text/csv 30 rows in, 30 predictions out" in printed
    assert "'probabilities': [" in printed
    assert "200 text/csv ['versicolor', 'versicolor']" in printed  # rows with a missing value
    assert "400 application/json" in printed
    assert "server exit status: 0" in printed
