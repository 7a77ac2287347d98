"""Who trains (resourceconfig.json) and which channels exist (inputdataconfig.json)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from byoc import channels, hosts
from byoc.config import read_json_object
from byoc.environment import Paths
from byoc.errors import InputError


def write(paths: Paths, name: str, content: object) -> None:
    paths.input_config.mkdir(parents=True, exist_ok=True)
    (paths.input_config / name).write_text(json.dumps(content))


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def test_without_a_resource_file_there_is_one_host_and_it_leads(paths: Paths) -> None:
    cluster = hosts.read(paths)

    assert cluster.hosts == ("algo-1",)
    assert cluster.is_leader


@pytest.mark.parametrize("name", ["resourceconfig.json", "resourceConfig.json"])
def test_the_leader_is_the_first_host_sorted_as_text(paths: Paths, name: str) -> None:
    write(paths, name, {"current_host": "algo-2", "hosts": ["algo-2", "algo-10"]})

    cluster = hosts.read(paths)

    assert cluster.leader == "algo-10"
    assert not cluster.is_leader


def test_local_mode_and_studio_forms_are_read(paths: Paths) -> None:
    write(
        paths,
        "resourceconfig.json",
        {
            "current_host": "sagemaker-local",
            "hosts": ["sagemaker-local"],
            "current_instance_type": "local",
        },
    )

    assert hosts.read(paths).is_leader


def test_a_current_host_outside_the_hosts_fails(paths: Paths) -> None:
    write(paths, "resourceconfig.json", {"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]})

    with pytest.raises(InputError, match="algo-3"):
        hosts.read(paths)


def test_channels_come_from_inputdataconfig_with_defaults_for_missing_keys(paths: Paths) -> None:
    write(
        paths,
        "inputdataconfig.json",
        {
            "training": {"TrainingInputMode": "File"},
            "validation": {
                "ContentType": "text/csv",
                "TrainingInputMode": "Pipe",
                "S3DistributionType": "ShardedByS3Key",
            },
        },
    )

    found = channels.read(paths)

    assert found["training"] == channels.Channel("training", paths.input_data / "training")
    validation = found["validation"]
    assert validation.path == paths.input_data / "validation_0"
    assert validation.pipe
    assert validation.sharded
    assert validation.content_type == "text/csv"


def test_without_inputdataconfig_the_directories_are_the_channels_but_not_manifests(
    paths: Paths,
) -> None:
    for name in ("training", "validation", "extra-manifest"):
        (paths.input_data / name).mkdir(parents=True)
    (paths.input_data / "training-manifest").write_text("[]")

    assert sorted(channels.read(paths)) == ["training", "validation"]


def test_train_is_accepted_as_the_training_channel(paths: Paths) -> None:
    (paths.input_data / "train").mkdir(parents=True)

    training, validation = channels.training_and_validation(channels.read(paths))

    assert training.name == "train"
    assert validation is None


def test_without_a_training_channel_the_error_lists_the_channels_found(paths: Paths) -> None:
    (paths.input_data / "data").mkdir(parents=True)

    with pytest.raises(InputError, match=r'no "training" channel \(channels found: "data"\)'):
        channels.training_and_validation(channels.read(paths))


def test_a_configured_channel_without_data_fails(paths: Paths) -> None:
    write(paths, "inputdataconfig.json", {"training": {}})

    with pytest.raises(InputError, match='Channel "training" has no data'):
        channels.training_and_validation(channels.read(paths))


def test_a_config_file_holds_a_json_object(tmp_path: Path) -> None:
    path = tmp_path / "resourceconfig.json"
    path.write_text('{"hosts": ["algo-1"]}')

    assert read_json_object(path) == {"hosts": ["algo-1"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not valid JSON"), ('["algo-1"]', "must hold a JSON object of hosts")],
)
def test_a_config_file_without_a_json_object_is_an_input_error_naming_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "resourceconfig.json"
    path.write_text(content)

    with pytest.raises(InputError, match=message) as error:
        read_json_object(path, "a JSON object of hosts")
    assert str(error.value).startswith(str(path))


def test_an_unreadable_resource_file_fails_naming_it(paths: Paths) -> None:
    paths.input_config.mkdir(parents=True)
    (paths.input_config / "resourceconfig.json").write_text("[]")

    with pytest.raises(InputError, match=r"resourceconfig\.json must hold a JSON object"):
        hosts.read(paths)


def test_a_channel_entry_that_is_not_an_object_fails(paths: Paths) -> None:
    write(paths, "inputdataconfig.json", {"training": "File"})

    with pytest.raises(InputError, match="JSON object of channel names to objects"):
        channels.read(paths)


# ---------------------------------------------------------------------------- the leader's port


def test_the_port_and_timeout_can_be_moved_by_the_environment() -> None:
    assert hosts.leader_port({}) == hosts.LEADER_PORT
    assert hosts.leader_port({"BYOC_LEADER_PORT": "9100"}) == 9100
    assert hosts.leader_timeout({}) == hosts.LEADER_TIMEOUT_S
    assert hosts.leader_timeout({"BYOC_LEADER_TIMEOUT_S": "2.5"}) == 2.5


def test_a_host_waits_until_the_leader_closes_its_port() -> None:
    port = hosts.LeaderPort(0, others=1)
    waited: list[bool] = []
    waiter = threading.Thread(
        target=lambda: waited.append(hosts.wait_for_leader("127.0.0.1", port.port, 10))
    )
    waiter.start()

    assert port.wait_for_others(10) == 1
    waiter.join(0.3)
    assert waiter.is_alive()
    port.close()
    waiter.join(10)
    assert waited == [True]


def test_the_leader_stops_waiting_for_hosts_that_never_come() -> None:
    port = hosts.LeaderPort(0, others=2)
    try:
        started = time.monotonic()
        assert port.wait_for_others(0.3) == 0
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        port.close()


def test_a_leader_that_never_listens_is_given_up_after_the_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    started = time.monotonic()

    assert hosts.wait_for_leader("127.0.0.1", closed, 1.0) is False
    assert 1.0 <= time.monotonic() - started < 5


def test_a_leader_name_that_does_not_resolve_is_retried_until_the_timeout() -> None:
    assert hosts.wait_for_leader("algo-1.invalid", hosts.LEADER_PORT, 0.5) is False
