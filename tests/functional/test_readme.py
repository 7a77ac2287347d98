"""The README's "Make it your own" steps, run as they are written, in a copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from itertools import takewhile
from pathlib import Path

import pytest
from conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Make it your own"


def readme_steps() -> str:
    """The shell block of the README's "Make it your own" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the section has one shell block"
    return blocks[0]


def copy_of_the_repository(destination: Path) -> Path:
    """The repository's files (as git sees them, uncommitted ones too), and its virtual env."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The same environment: the steps must not need anything it does not have.
    (destination / ".venv").symlink_to((ROOT / ".venv").resolve(), target_is_directory=True)
    return destination


def test_the_readme_steps_make_the_template_serve_another_model(tmp_path: Path) -> None:
    require_tool("nginx")
    require_tool("curl")
    steps = readme_steps()
    assert "make lock" in steps
    assert "make demo" in steps
    repo = copy_of_the_repository(tmp_path / "repo")
    environ = {k: v for k, v in os.environ.items() if k not in ("PORT", "BYOC_PREDICTOR")}
    # The copy's files are newer than the shared environment's marker: make would reinstall
    # what is already there. Its marker is what the steps themselves may make out of date.
    environ["MAKEFLAGS"] = f"VENV={(ROOT / '.venv').resolve()}"

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", steps],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model_module = repo / "container" / "decision_trees" / "predictor.py"
    assert f"model module: {model_module}" in result.stdout
    assert "fitting RandomForestClassifier" in result.stdout
    payload = (repo / "local_test" / "payload.csv").read_text().splitlines()
    after = result.stdout.split("predictions for local_test/payload.csv:\n", 1)[1].splitlines()
    labels = list(takewhile(lambda line: line in {"setosa", "versicolor", "virginica"}, after))
    assert len(labels) == len(payload)
    # The example adds no package: `make lock` (which needs PyPI) wrote the same locks again.
    for lock in ("container/requirements.txt", "requirements-dev.txt"):
        assert (repo / lock).read_text() == (ROOT / lock).read_text(), f"make lock changed {lock}"


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*/")))
def test_every_example_has_what_the_readme_steps_copy(example: str) -> None:
    folder = ROOT / "examples" / example
    for name in ("predictor.py", "requirements.txt", "payload.csv", "test_dir/input"):
        assert (folder / name).exists(), f"examples/{example}/{name}"


def readme_diffs() -> list[tuple[str, str]]:
    """Each diff block of the README's Examples section, with the example it follows."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Examples", 1)[1].split("\n### ", 1)[0]
    return re.findall(
        r"`examples/(\w+)`[^\n]*\n(?:[^\n]+\n)*?```diff\n(.*?)```", section, re.DOTALL
    )


def test_the_readme_shows_a_diff_for_every_example() -> None:
    shown = {name for name, _ in readme_diffs()}
    assert shown == {p.name for p in (ROOT / "examples").glob("*/")}


@pytest.mark.parametrize(("example", "diff"), readme_diffs(), ids=lambda v: v[:24])
def test_every_line_of_an_examples_diff_is_in_the_file_it_says(example: str, diff: str) -> None:
    default = (ROOT / "container" / "decision_trees" / "predictor.py").read_text()
    changed = (ROOT / "examples" / example / "predictor.py").read_text()
    for line in diff.splitlines():
        sign, code = line[:1], line[1:]
        if code.strip() in ("", "..."):
            continue
        if sign in "- ":
            assert code in default, f"not in the default predictor.py: {code!r}"
        if sign in "+ ":
            assert code in changed, f"not in examples/{example}/predictor.py: {code!r}"
