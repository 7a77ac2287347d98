"""What the image itself promises SageMaker, read from the built image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import CONTEXT
from .engine import Engine


@pytest.fixture(scope="module")
def config(engine: Engine, image: str) -> dict[str, Any]:
    """The image's configuration (`docker image inspect`)."""
    return dict(json.loads(engine.run("image", "inspect", image).stdout)[0]["Config"])


def in_image(engine: Engine, image: str, script: str) -> str:
    """Run a shell snippet in a throw-away container of the image; its stdout."""
    return engine.run("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout


def test_label_allows_sagemaker_to_choose_the_port(config: dict[str, Any]) -> None:
    """Without this label SageMaker never sets SAGEMAKER_BIND_TO_PORT."""
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"


def test_exposes_8080_and_runs_as_root(config: dict[str, Any]) -> None:
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["User"] in ("", "root", "0")


def test_train_and_serve_are_programs_on_path_without_a_shell_entrypoint(
    config: dict[str, Any], engine: Engine, image: str
) -> None:
    """`docker run IMAGE train|serve` runs the program itself: no ENTRYPOINT, both found on PATH."""
    assert not config["Entrypoint"]
    found = in_image(engine, image, "command -v train; command -v serve").split()
    assert found == ["/opt/program/train", "/opt/program/serve"]
    modes = in_image(engine, image, "stat -c %a /opt/program/train /opt/program/serve").split()
    assert modes == ["755", "755"]


def image_env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["Env"])


def test_python_runs_unbuffered_without_writing_bytecode(config: dict[str, Any]) -> None:
    env = image_env(config)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_path_puts_the_programs_and_the_environment_before_the_system(
    config: dict[str, Any],
) -> None:
    folders = image_env(config)["PATH"].split(":")
    assert folders[:2] == ["/opt/program", "/opt/venv/bin"]
    assert "/usr/bin" in folders
    assert "/usr/sbin" in folders


def test_no_installer_compiler_or_cache_in_the_final_image(engine: Engine, image: str) -> None:
    """The build stage keeps pip, its cache and the package lists; no compiler is installed."""
    listing = in_image(
        engine,
        image,
        "for tool in pip pip3 gcc cc; do command -v $tool; done;"
        "ls /root/.cache/pip /var/lib/apt/lists/*_Packages 2>/dev/null; true",
    )
    assert listing == ""


def test_runtime_dependencies_import_in_the_image(engine: Engine, image: str) -> None:
    """The pinned versions are the ones installed, and the test suites removed were not needed."""
    versions = in_image(
        engine,
        image,
        "python -c 'import flask, gevent, gunicorn, numpy, pyarrow.csv, pyarrow.parquet,"
        " sklearn.tree, skops.io;"
        " print(numpy.__version__, sklearn.__version__, pyarrow.__version__)'",
    ).split()
    # The lock's entries: `name==version \` at the start of a line, hashes and comments indented.
    pins = dict(
        line.split()[0].split("==")
        for line in (CONTEXT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith(("#", " "))
    )
    assert versions == [pins["numpy"], pins["scikit-learn"], pins["pyarrow"]]


def test_a_checkout_without_executable_bits_builds_a_working_image(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The Dockerfile sets the bits itself (a zip download or a Windows checkout loses them)."""
    context = tmp_path / "context"
    shutil.copytree(CONTEXT, context, ignore=shutil.ignore_patterns("__pycache__"))
    for program in ("train", "serve"):
        (context / "decision_trees" / program).chmod(0o644)
    engine.run("build", "--tag", "decision-trees:no-exec-bits", str(context), timeout=1800)
    try:
        found = in_image(
            engine, "decision-trees:no-exec-bits", "test -x $(command -v train) && echo x"
        )
        assert found.strip() == "x"
    finally:
        engine.run("image", "rm", "decision-trees:no-exec-bits", check=False)


def test_the_build_context_is_what_the_dockerfile_copies_only(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """.dockerignore keeps local clutter and bytecode out of what is sent to the engine."""
    context = tmp_path / "context"
    shutil.copytree(CONTEXT, context)
    (context / "notes.txt").write_text("not for the image\n")
    (context / "decision_trees" / "__pycache__").mkdir(exist_ok=True)
    (context / "decision_trees" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"\0")
    lister = tmp_path / "Dockerfile.list"
    lister.write_text(f"FROM {image}\nCOPY . /context\n")
    engine.run("build", "--file", str(lister), "--tag", "decision-trees:context", str(context))
    try:
        listing = in_image(engine, "decision-trees:context", "cd /context && find . -type f")
    finally:
        engine.run("image", "rm", "decision-trees:context", check=False)
    files = {line.removeprefix("./") for line in listing.split()}
    expected = {"requirements.txt", "compile_bytecode.py"} | {
        str(path.relative_to(CONTEXT))
        for path in (CONTEXT / "decision_trees").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert files == expected
