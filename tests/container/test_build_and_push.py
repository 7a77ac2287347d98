"""build_and_push.sh: the real aws CLI against moto's STS and ECR, pushing to a local registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool

from .conftest import REPO
from .engine import Engine
from .services import moto_server, registry
from .serving import running_server

SCRIPT = REPO / "build_and_push.sh"
TOOLS = Path(sys.executable).parent
"""The test environment's bin folder: the pinned aws CLI and moto_server are installed there."""

ACCOUNT = "123456789012"
"""The account moto's STS answers with."""


@dataclass(frozen=True)
class Cloud:
    """Where the script's calls go: moto's endpoint and the local registry."""

    endpoint: str
    registry: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def cloud(docker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    folder = tmp_path_factory.mktemp("cloud")
    moto = require_tool_in(TOOLS, "moto_server")
    require_tool_in(TOOLS, "aws")
    with (
        moto_server(moto, folder) as endpoint,
        registry(require_tool("docker-registry"), folder) as host,
    ):
        empty = folder / "empty"
        empty.write_text("")
        env = {
            **docker_env,
            "PATH": f"{TOOLS}{os.pathsep}{docker_env['PATH']}",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "DOCKER_CONFIG": str(folder / "docker-config"),
            "REGISTRY": host,
        }
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.pop(name, None)
        yield Cloud(endpoint, host, env)


def require_tool_in(folder: Path, name: str) -> str:
    """A tool installed with the test environment (requirements-dev.txt)."""
    path = folder / name
    if not path.is_file():
        return require_tool(name)
    return str(path)


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1200, cwd="/"
    )


def repositories(cloud: Cloud, region: str) -> list[dict[str, object]]:
    result = subprocess.run(
        ["aws", "ecr", "describe-repositories", "--region", region, "--output", "json"],
        env=cloud.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(result.stdout)["repositories"])


def registry_tags(cloud: Cloud, name: str) -> set[str]:
    with urllib.request.urlopen(
        f"http://{cloud.registry}/v2/{name}/tags/list", timeout=10
    ) as answer:
        return set(json.load(answer)["tags"])


def test_pushes_tag_and_latest_and_prints_the_uri_last(
    cloud: Cloud, image: str, engine: Engine, model_dir: Path
) -> None:
    """The image lands under TAG and latest in a repository created with scan on push; pulled back,
    it serves."""
    env = {**cloud.env, "AWS_REGION": "eu-west-1"}
    result = run_script(env, "decision-trees-pushed", "v1")
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"{cloud.registry}/decision-trees-pushed:v1"
    assert result.stdout.strip().splitlines()[-1] == uri
    assert f"account {ACCOUNT}, region eu-west-1 (from AWS_REGION)" in result.stderr

    [repository] = repositories(cloud, "eu-west-1")
    assert repository["repositoryName"] == "decision-trees-pushed"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert registry_tags(cloud, "decision-trees-pushed") == {"v1", "latest"}

    engine.run("image", "rm", uri, f"{cloud.registry}/decision-trees-pushed:latest")
    engine.run("pull", uri)
    platform = engine.run("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", uri).stdout
    assert platform.strip() == "linux/amd64"
    with running_server(engine, uri, model_dir) as server:
        assert server.get("/ping").status == 200


@pytest.mark.parametrize(
    ("settings", "region", "source"),
    [
        (
            {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-central-1"},
            "us-west-2",
            "AWS_REGION",
        ),
        ({"AWS_DEFAULT_REGION": "eu-central-1"}, "eu-central-1", "AWS_DEFAULT_REGION"),
        ({}, "ap-south-1", "aws configure get region"),
    ],
)
def test_region_comes_from_the_first_source_set(
    cloud: Cloud, image: str, tmp_path: Path, settings: dict[str, str], region: str, source: str
) -> None:
    """AWS_REGION, then AWS_DEFAULT_REGION, then the CLI's configuration; the script says which."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = ap-south-1\n")
    env = {**cloud.env, **settings, "AWS_CONFIG_FILE": str(config)}
    result = run_script(env, f"region-{region}", "r1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"region {region} (from {source})" in result.stderr
    assert [r["repositoryName"] for r in repositories(cloud, region)] == [f"region-{region}"]


def test_default_tag_is_the_git_short_sha(cloud: Cloud, image: str) -> None:
    """Without TAG the image is tagged with the commit, marked -dirty when the tree has changes."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = f"{sha}-dirty" if dirty else sha
    result = run_script({**cloud.env, "AWS_REGION": "us-east-1"}, "decision-trees-sha")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        result.stdout.strip().splitlines()[-1] == f"{cloud.registry}/decision-trees-sha:{expected}"
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def path_of_only(folder: Path, tools: dict[str, str]) -> str:
    """A PATH holding nothing but these tools (name to executable)."""
    folder.mkdir()
    for name, target in {
        "bash": require_tool("bash"),
        "dirname": require_tool("dirname"),
        **tools,
    }.items():
        (folder / name).symlink_to(target)
    return str(folder)


def test_missing_docker_is_a_one_line_error(cloud: Cloud, tmp_path: Path) -> None:
    """Without a docker command the script stops before calling anything."""
    path = path_of_only(tmp_path / "bin", {"aws": require_tool_in(TOOLS, "aws")})
    env = {**cloud.env, "PATH": path, "AWS_REGION": "us-east-1"}
    assert "docker is not installed" in one_line_error(run_script(env, "never-created", "t"))


def test_missing_aws_is_a_one_line_error(cloud: Cloud, engine: Engine, tmp_path: Path) -> None:
    """Without the aws CLI the script stops before calling anything."""
    path = path_of_only(tmp_path / "bin", {"docker": engine.client})
    env = {**cloud.env, "PATH": path, "AWS_REGION": "us-east-1"}
    assert "aws CLI is not installed" in one_line_error(run_script(env, "never-created", "t"))


def test_no_engine_is_a_one_line_error(cloud: Cloud, tmp_path: Path) -> None:
    """A DOCKER_HOST where no engine answers is reported as such."""
    env = {**cloud.env, "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "AWS_REGION": "us-east-1"}
    assert "no Docker engine answers" in one_line_error(run_script(env, "never-created", "t"))


def test_no_credentials_is_a_one_line_error(cloud: Cloud) -> None:
    """Without credentials nothing is built or created."""
    env = {**cloud.env, "AWS_REGION": "us-east-1"}
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    assert "no usable AWS credentials" in one_line_error(run_script(env, "never-created", "t"))
    assert "never-created" not in [r["repositoryName"] for r in repositories(cloud, "us-east-1")]


def test_an_invalid_repository_name_is_refused(cloud: Cloud) -> None:
    """ECR's naming rules are checked first: upper case is refused with the rule."""
    line = one_line_error(
        run_script({**cloud.env, "AWS_REGION": "us-east-1"}, "Decision_Trees", "t")
    )
    assert "not a valid ECR repository name" in line
