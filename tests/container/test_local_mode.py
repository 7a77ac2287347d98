"""The pinned SageMaker SDK's local mode drives the image: fit (1 and 2 instances), deploy,
predict, transform, delete; through local_test/local_mode.py, with no AWS call attempted."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, system_tool
from .engine import Engine, free_subnet
from .services import free_port

NETWORK = "sagemaker-local"
"""The network every local-mode compose file names."""

NETWORK_SUBNETS = ipaddress.ip_network("172.31.0.0/16").subnets(new_prefix=24)
"""Where the test gives that network a /24 that no route on this machine overlaps: left to
itself, the engine would take the first of its default pools, as every other engine here does."""

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
TWO_INSTANCE_RUNS = 2


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "local_mode", REPO / "local_test" / "local_mode.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


@dataclass
class LocalMode:
    engine: Engine
    image: str
    root: Path
    session: Any
    attempts: list[str] = field(default_factory=list)
    """Every host name outside this machine that the SDK tried to reach."""

    def running(self) -> list[str]:
        return self.engine.run("ps", "--quiet").stdout.split()


@pytest.fixture(scope="module")
def local_mode(
    engine: Engine,
    image: str,
    docker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalMode]:
    """The SDK pointed at this tier's engine, its files in a temporary folder, AWS out of reach."""
    system_tool("docker-compose")
    root = tmp_path_factory.mktemp("local-mode")
    attempts: list[str] = []
    resolve = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOCAL_HOSTS:
            attempts.append(name)
            raise socket.gaierror(f"the local-mode test reaches nothing outside: {name}")
        return resolve(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", engine.host)
        patch.setenv("PATH", docker_env["PATH"])
        patch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        patch.delenv("SAGEMAKER_USER_CONFIG_OVERRIDE", raising=False)
        for name in (
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(root / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(root / "no-aws-credentials"))
        patch.setattr(socket, "getaddrinfo", local_only)
        script.prepare_environment(root)
        engine.run("network", "create", "--subnet", str(free_subnet(NETWORK_SUBNETS)), NETWORK)
        try:
            session = script.local_session(free_port(), root)
            yield LocalMode(engine, image, root, session, attempts)
        finally:
            removed = script.remove_leftovers(root)
            networks = engine.run("network", "ls", "--quiet", "--filter", f"name=^{NETWORK}$")
    assert removed, "the SDK removed its stopped containers: remove_leftovers has nothing to do"
    assert not networks.stdout.strip(), f"{NETWORK} is left behind"
    assert not engine.run("ps", "--all", "--quiet").stdout.strip()
    assert not attempts, f"the SDK tried to reach {sorted(set(attempts))}"


def assert_a_good_model(files: dict[str, bytes]) -> None:
    metadata = json.loads(files["metadata.json"])
    assert metadata["training_rows"] == 120
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    # The generic Estimator wrote the dict as Python's str(): train read it.
    assert metadata["hyperparameters"]["class_weight"] == script.HYPERPARAMETERS["class_weight"]
    assert "model.skops" in files


@pytest.fixture(scope="module")
def two_instances(local_mode: LocalMode) -> Any:
    """An estimator fitted with two instances (the last of TWO_INSTANCE_RUNS fits)."""
    estimator = None
    for run in range(TWO_INSTANCE_RUNS):
        estimator = script.fit(
            local_mode.session, local_mode.image, 2, local_mode.root / f"two-{run}"
        )
        files = script.model_files(estimator)
        assert_a_good_model(files)
        output = Path(estimator.model_data).with_name("output.tar.gz")
        assert "failure" not in subprocess.run(
            ["tar", "-tzf", output.as_posix().removeprefix("file:")], capture_output=True,
            text=True, check=True,
        ).stdout  # fmt: skip
    return estimator


def test_fit_with_one_instance_writes_the_model(local_mode: LocalMode) -> None:
    estimator = script.fit(local_mode.session, local_mode.image, 1, local_mode.root / "one")

    assert_a_good_model(script.model_files(estimator))
    assert local_mode.running() == []


def test_fit_with_two_instances_writes_the_leaders_whole_model_every_time(
    local_mode: LocalMode, two_instances: Any
) -> None:
    """The non-leader waits for the leader: compose never stops it mid-training."""
    assert local_mode.running() == []


def test_deploy_predicts_csv_and_json_then_the_endpoint_is_deleted(
    local_mode: LocalMode, two_instances: Any
) -> None:
    rows = script.PAYLOAD.read_text()
    count = len(rows.splitlines())

    as_csv, as_json = script.predict(two_instances, rows)

    assert len(as_csv.splitlines()) == count
    assert set(as_csv.split()) <= {"setosa", "versicolor", "virginica"}
    assert as_json["predictions"] == as_csv.split()
    assert local_mode.running() == []


def test_transform_writes_one_line_per_row(local_mode: LocalMode, two_instances: Any) -> None:
    rows = script.PAYLOAD.read_text()

    output = script.transform(two_instances, rows, local_mode.root)

    assert len(output.splitlines()) == len(rows.splitlines())
    assert set(output.split()) == {"setosa", "versicolor", "virginica"}
    assert local_mode.running() == []
