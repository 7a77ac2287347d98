"""Settings resolution: SageMaker's variable names, bounds, and the CPUs really available."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from byoc import cpus, memory, settings


def resolve(**environ: str) -> settings.Settings:
    return settings.resolve(environ)


def test_defaults_follow_sagemaker() -> None:
    resolved = resolve()
    assert resolved.port == 8080
    assert resolved.timeout == 60
    assert resolved.max_payload_bytes == 6 * 1024 * 1024
    assert resolved.default_accept is None
    assert resolved.batch is False
    assert resolved.log_level == 20
    assert resolved.model_dir == Path("/opt/ml/model")
    limit = memory.memory_limit()
    fit = memory.workers_that_fit(limit, 6) if limit is not None else cpus.available_cpus()
    assert resolved.workers == min(cpus.available_cpus(), fit)
    assert resolved.inference_output == ("predicted_label",)


def test_sagemaker_names_and_the_classic_names_are_read() -> None:
    assert resolve(SAGEMAKER_MODEL_SERVER_WORKERS="3").workers == 3
    assert resolve(MODEL_SERVER_WORKERS="5").workers == 5
    assert resolve(SAGEMAKER_MODEL_SERVER_WORKERS="3", MODEL_SERVER_WORKERS="5").workers == 3
    assert resolve(SAGEMAKER_MODEL_SERVER_TIMEOUT="120").timeout == 120
    assert resolve(MODEL_SERVER_TIMEOUT="30").timeout == 30
    assert resolve(SAGEMAKER_BIND_TO_PORT="9090").port == 9090
    assert resolve(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json").default_accept == (
        "application/json"
    )
    assert resolve(SAGEMAKER_BASE_DIR="/tmp/ml").model_dir == Path("/tmp/ml/model")
    assert resolve(SAGEMAKER_CONTAINER_LOG_LEVEL="10").log_level == 10
    assert resolve(SAGEMAKER_CONTAINER_LOG_LEVEL="warning").log_level == 30


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true "])
def test_batch_is_any_case_of_true(value: str) -> None:
    assert resolve(SAGEMAKER_BATCH=value).batch is True


@pytest.mark.parametrize("value", ["", "false", "1", "yes"])
def test_batch_is_off_otherwise(value: str) -> None:
    assert resolve(SAGEMAKER_BATCH=value).batch is False


@pytest.mark.parametrize(("requested", "enforced"), [("1", 6), ("6", 6), ("20", 20), ("500", 100)])
def test_the_payload_limit_is_at_least_6_and_at_most_100_mb(requested: str, enforced: int) -> None:
    resolved = resolve(SAGEMAKER_MAX_PAYLOAD_IN_MB=requested)
    assert resolved.max_payload_mb == enforced
    assert resolved.max_payload_bytes == enforced * 1024 * 1024


@pytest.mark.parametrize(
    ("workers", "payload_mb", "transforms"), [("2", "6", 2), ("4", "50", 2), ("2", "100", 1)]
)
def test_concurrent_transforms_times_payload_stays_within_100_mb(
    workers: str, payload_mb: str, transforms: int
) -> None:
    resolved = resolve(
        SAGEMAKER_MODEL_SERVER_WORKERS=workers, SAGEMAKER_MAX_PAYLOAD_IN_MB=payload_mb
    )
    assert resolved.max_concurrent_transforms == transforms
    assert resolved.max_concurrent_transforms * resolved.max_payload_mb <= 100


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "two", "not a whole number"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "at least 1"),
        ("SAGEMAKER_BIND_TO_PORT", "70000", "at most 65535"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "-1", "at least 1"),
        ("SAGEMAKER_CONTAINER_LOG_LEVEL", "loud", "neither a number nor a level"),
        ("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,score", "expected distinct names among"),
        ("SAGEMAKER_INFERENCE_OUTPUT", "probability,probability", "expected distinct names"),
        ("SAGEMAKER_INFERENCE_OUTPUT", "predicted-label", "expected distinct names"),
    ],
)
def test_an_unusable_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(settings.SettingsError, match=f"{name}=.*{message}"):
        resolve(**{name: value})


@pytest.mark.parametrize(
    ("raw", "outputs"),
    [
        ("", ("predicted_label",)),
        (" ", ("predicted_label",)),
        ("predicted_label", ("predicted_label",)),
        ("probability", ("probability",)),
        ("probability,predicted_label", ("probability", "predicted_label")),
        (
            " Predicted_Label , PROBABILITIES,labels ,probability",
            ("predicted_label", "probabilities", "labels", "probability"),
        ),
        ("labels,", ("labels",)),
    ],
)
def test_inference_output_is_a_list_of_outputs_in_the_order_asked(
    raw: str, outputs: tuple[str, ...]
) -> None:
    assert resolve(SAGEMAKER_INFERENCE_OUTPUT=raw).inference_output == outputs


def test_every_inference_output_is_one_the_default_hooks_answer() -> None:
    from byoc import defaults

    assert settings.OUTPUTS == defaults.OUTPUTS
    assert settings.OUTPUTS[0] == defaults.PREDICTED_LABEL
    everything = resolve(SAGEMAKER_INFERENCE_OUTPUT=",".join(settings.OUTPUTS))
    assert everything.inference_output == settings.OUTPUTS


def test_the_unknown_name_error_lists_the_known_ones() -> None:
    with pytest.raises(settings.SettingsError) as error:
        resolve(SAGEMAKER_INFERENCE_OUTPUT="score")
    for name in settings.OUTPUTS:
        assert name in str(error.value)
    assert "'score'" in str(error.value)


def test_as_dict_is_json_with_the_derived_values() -> None:
    values = resolve(SAGEMAKER_INFERENCE_OUTPUT="probability,labels").as_dict()

    assert json.loads(json.dumps(values)) == {
        **values,
        "inference_output": ["probability", "labels"],
    }
    assert values["max_payload_bytes"] == 6 * 1024 * 1024
    assert values["max_concurrent_transforms"] >= 1


def test_settings_prints_the_resolved_values_without_starting_anything(tmp_path: Path) -> None:
    program_dir = Path(settings.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "byoc.settings"],
        cwd=program_dir,
        env={"SAGEMAKER_INFERENCE_OUTPUT": "labels", "SAGEMAKER_BASE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )

    printed = json.loads(result.stdout)
    assert printed["inference_output"] == ["labels"]
    assert printed["model_dir"] == str(tmp_path / "model")


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _: {0, 1, 2, 3})


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.usefixtures("four_cpus")
def test_cpus_are_the_affinity_without_a_quota(tmp_path: Path) -> None:
    assert cpus.available_cpus(tmp_path, tmp_path / "cgroup") == 4


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("150000 100000", 2),
        ("100000 100000", 1),
        ("max 100000", 4),
        ("800000 100000", 4),
        ("10000 100000", 1),
    ],
)
def test_a_cgroup_v2_quota_lowers_the_cpus(tmp_path: Path, cpu_max: str, expected: int) -> None:
    write(tmp_path / "cpu.max", cpu_max)
    assert cpus.available_cpus(tmp_path, tmp_path / "missing") == expected


@pytest.mark.usefixtures("four_cpus")
def test_the_own_cgroup_v2_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path / "proc-cgroup", "0::/system.slice/job.scope\n")
    write(tmp_path / "system.slice" / "job.scope" / "cpu.max", "200000 100000")
    assert cpus.available_cpus(tmp_path, tmp_path / "proc-cgroup") == 2


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize(
    ("controller", "quota", "expected"),
    [("cpu", "200000", 2), ("cpu,cpuacct", "50000", 1), ("cpu", "-1", 4)],
)
def test_a_cgroup_v1_quota_lowers_the_cpus(
    tmp_path: Path, controller: str, quota: str, expected: int
) -> None:
    write(tmp_path / controller / "cpu.cfs_quota_us", quota)
    write(tmp_path / controller / "cpu.cfs_period_us", "100000")
    assert cpus.available_cpus(tmp_path, tmp_path / "missing") == expected


def test_the_affinity_limits_the_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda _: {3})
    write(tmp_path / "cpu.max", "max 100000")
    assert cpus.available_cpus(tmp_path, tmp_path / "missing") == 1


GIB = 1024**3


def test_the_memory_limit_is_the_lowest_cgroup_v2_limit_up_to_the_root(tmp_path: Path) -> None:
    write(tmp_path / "proc-cgroup", "0::/system.slice/job.scope\n")
    write(tmp_path / "system.slice" / "job.scope" / "memory.max", "max")
    write(tmp_path / "system.slice" / "memory.max", str(2 * GIB))
    write(tmp_path / "meminfo", "MemTotal:       16777216 kB\n")
    assert memory.memory_limit(tmp_path, tmp_path / "proc-cgroup", tmp_path / "meminfo") == 2 * GIB


def test_a_container_reads_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    """Docker mounts the container's own cgroup at /sys/fs/cgroup; /proc/self/cgroup still names
    the host's path, which does not exist below it."""
    write(tmp_path / "proc-cgroup", "0::/docker/0123abcd\n")
    write(tmp_path / "memory.max", str(GIB))
    assert memory.memory_limit(tmp_path, tmp_path / "proc-cgroup", tmp_path / "missing") == GIB


@pytest.mark.parametrize("where", ["own", "root"])
def test_a_cgroup_v1_limit_is_read_and_its_unlimited_value_is_the_machines(
    tmp_path: Path, where: str
) -> None:
    """A host process's own cgroup below the mount (here, the limit set there), or a container's
    own cgroup mounted as the root (the limit there, its host path missing below)."""
    unlimited, limit = "9223372036854771712", str(512 * 1024 * 1024)
    write(tmp_path / "proc-cgroup", "5:cpu,cpuacct:/\n4:memory:/jobs/1234\n1:name=systemd:/\n")
    write(tmp_path / "memory" / "memory.limit_in_bytes", limit if where == "root" else unlimited)
    if where == "own":
        write(tmp_path / "memory" / "jobs" / "1234" / "memory.limit_in_bytes", limit)
    write(tmp_path / "meminfo", "MemTotal:        8388608 kB\nMemFree:  1 kB\n")
    found = memory.memory_limit(tmp_path, tmp_path / "proc-cgroup", tmp_path / "meminfo")
    assert found == int(limit)


def test_without_a_cgroup_limit_the_machines_memory_is_the_limit(tmp_path: Path) -> None:
    write(tmp_path / "memory.max", "max")
    write(tmp_path / "meminfo", "MemTotal:        8388608 kB\n")
    assert memory.memory_limit(tmp_path, tmp_path / "missing", tmp_path / "meminfo") == 8 * GIB


def test_no_limit_is_known_where_nothing_can_be_read(tmp_path: Path) -> None:
    assert memory.memory_limit(tmp_path, tmp_path / "missing", tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("limit_mib", "payload_mb", "model_mib", "expected"),
    [
        (1024, 6, 0, 6),  # serverless' smallest: (1024 - 128) // (12 + 20 * 6)
        (6144, 6, 0, 45),
        (1024, 6, 500, 3),  # the model's files count against the limit
        (256, 6, 0, 1),  # not even one fits: one nonetheless
        (8192, 100, 0, 4),  # batch transform's largest bodies: 2,012 MiB each
    ],
)
def test_workers_that_fit_leave_room_for_each_ones_peak(
    limit_mib: int, payload_mb: int, model_mib: int, expected: int
) -> None:
    mib = 1024 * 1024
    assert memory.workers_that_fit(limit_mib * mib, payload_mb, model_mib * mib) == expected


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize(
    ("limit_mib", "environ", "expected"),
    [
        (1024, {}, 4),  # six fit: the four CPUs decide
        (512, {}, 2),
        (256, {}, 1),
        (512, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "SAGEMAKER_BATCH": "true"}, 1),
        (256, {"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, 3),  # an explicit count is obeyed
    ],
)
def test_the_worker_count_is_the_cpus_or_what_fits_in_memory(
    monkeypatch: pytest.MonkeyPatch, limit_mib: int, environ: dict[str, str], expected: int
) -> None:
    monkeypatch.setattr(memory, "memory_limit", lambda: limit_mib * 1024 * 1024)
    monkeypatch.setattr(cpus, "read_value", lambda path: "")  # no CPU quota
    resolved = resolve(**environ)
    assert resolved.workers == expected
    assert resolved.memory_limit_mib == limit_mib
    assert resolved.as_dict()["worker_memory_mib"] == memory.worker_mib(resolved.max_payload_mb)


def test_the_model_files_size_is_their_sum(tmp_path: Path) -> None:
    write(tmp_path / "model" / "a.bin", "x" * 100)
    write(tmp_path / "model" / "nested" / "b.bin", "y" * 50)
    assert memory.model_bytes(tmp_path / "model") == 150
    assert memory.model_bytes(tmp_path / "missing") == 0
