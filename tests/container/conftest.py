"""The container tier's engine and image: one private dockerd and one image build per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI

from .base_image import ensure_base_image
from .engine import Engine, EngineError, with_sbin

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "container"
DOCKERFILE = CONTEXT / "Dockerfile"
IMAGE = "decision-trees:container-tests"
TEST_DIR = REPO / "local_test" / "test_dir"


def unavailable(message: str) -> None:
    """Skip on a laptop; fail under CI, which must be able to run every tier."""
    if IN_CI:
        pytest.fail(f"{message} (CI must run the container tier)", pytrace=False)
    pytest.skip(message)


def system_tool(name: str) -> str:
    """A tool from Debian's packages, also when its sbin folder is not on PATH."""
    found = shutil.which(name, path=with_sbin(os.environ.get("PATH", "")))
    if found is None:
        unavailable(f"{name} is not installed (make test installs it)")
    return str(found)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A private Docker engine; stopped, and its folder removed, at the end of the session."""
    dockerd = system_tool("dockerd")
    system_tool("debootstrap")
    if os.geteuid() != 0:
        unavailable("the container tier starts its own dockerd and runs debootstrap: it needs root")
    started = Engine(dockerd)
    try:
        started.start()
    except EngineError as error:
        started.stop()
        unavailable(f"the Docker engine did not start: {error}")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The template's image, built once per session from container/ on the locally made base."""
    ensure_base_image(engine, DOCKERFILE)
    engine.run("build", "--platform", "linux/amd64", "--tag", IMAGE, str(CONTEXT), timeout=1800)
    return IMAGE


@pytest.fixture(scope="session")
def docker_env(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for scripts that call `docker`: this engine's socket, its client first."""
    bin_dir = tmp_path_factory.mktemp("docker-bin")
    (bin_dir / "docker").symlink_to(engine.client)
    return {
        **os.environ,
        **engine.env(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def training_case(folder: Path, hyperparameters: dict[str, str] | None = None) -> Path:
    """A fresh /opt/ml holding a copy of local_test/test_dir's input (and other hyperparameters)."""
    shutil.copytree(TEST_DIR / "input", folder / "input")
    if hyperparameters is not None:
        config = folder / "input" / "config" / "hyperparameters.json"
        config.write_text(json.dumps(hyperparameters))
    return folder


def run_training(engine: Engine, image: str, case: Path) -> subprocess.CompletedProcess[str]:
    """`docker run -v CASE:/opt/ml IMAGE train`, the input read-only as SageMaker may mount it."""
    return engine.run(
        "run", "--rm",
        f"--volume={case}:/opt/ml",
        f"--volume={case / 'input'}:/opt/ml/input:ro",
        image, "train",
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def model_dir(engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the image on local_test/test_dir."""
    case = training_case(tmp_path_factory.mktemp("trained"))
    result = run_training(engine, image, case)
    assert result.returncode == 0, result.stdout + result.stderr
    return case / "model"
