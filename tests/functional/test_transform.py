"""local_test/transform_local.sh: a batch transform job over 1 to 4 real `serve` instances; and
the spreading of concurrent big requests over a server's workers, which such a job relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from iris_model import save_iris_model
from processes import children
from serving import ROOT, Server, running

TRANSFORM = ROOT / "local_test" / "transform_local.sh"
WRAPPED = ROOT / "local_test" / "transform.py"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("opt_ml")
    save_iris_model(directory / "model", max_leaf_nodes=5)
    return directory


def rows(count: int, seed: int) -> list[str]:
    values = np.random.default_rng(seed).uniform(0.1, 7.9, size=(count, 4))
    return [",".join(f"{v:.2f}" for v in row) for row in values]


@pytest.fixture(scope="module")
def csv_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five files of different sizes (the last one without its final newline)."""
    folder = tmp_path_factory.mktemp("csv_input")
    for index, count in enumerate((3000, 1, 2500, 40, 4000)):
        text = "\n".join(rows(count, index)) + ("" if index == 4 else "\n")
        (folder / f"part-{index}.csv").write_text(text)
    return folder


def transform(base_dir: Path, *arguments: object) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TEST_DIR": str(base_dir), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    return subprocess.run(
        [str(TRANSFORM), *map(str, arguments)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_output_is_the_same_for_1_to_4_instances_and_equals_one_request_per_file(
    base_dir: Path, csv_input: Path, tmp_path: Path
) -> None:
    results = []
    for instances in (1, 2, 3, 4):
        # 1 MB mini-batches: the 3,000-row file is split into several requests.
        done = transform(
            base_dir, csv_input, tmp_path / str(instances), "--instances", instances,
            "--max-payload-mb", 1, "--max-concurrent-transforms", 2,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        results.append(outputs(tmp_path / str(instances)))
    assert all(result == results[0] for result in results[1:])
    assert sorted(results[0]) == [f"part-{i}.csv.out" for i in range(5)]

    with running(base_dir, tmp_path, SAGEMAKER_BATCH="true") as server:
        for path in sorted(csv_input.iterdir()):
            status, _, answer = server.request(
                "POST", "/invocations", path.read_bytes(), {"Content-Type": "text/csv"}
            )
            assert status == 200
            # AssembleWith=Line: each answer followed by a newline, one line per record.
            assert results[0][f"{path.name}.out"] == answer + b"\n"
            assert answer.count(b"\n") + 1 == len(path.read_text().splitlines())


def test_single_record_and_multi_record_give_the_same_output(
    base_dir: Path, csv_input: Path, tmp_path: Path
) -> None:
    small = tmp_path / "in"
    small.mkdir()
    (small / "a.csv").write_bytes((csv_input / "part-3.csv").read_bytes())
    for strategy in ("SingleRecord", "MultiRecord"):
        done = transform(base_dir, small, tmp_path / strategy, "--batch-strategy", strategy)
        assert done.returncode == 0, done.stderr
    assert outputs(tmp_path / "SingleRecord") == outputs(tmp_path / "MultiRecord")
    assert (tmp_path / "MultiRecord" / "a.csv.out").read_text().count("\n") == 40


def test_join_source_input_puts_each_csv_line_before_its_answer(
    base_dir: Path, csv_input: Path, tmp_path: Path
) -> None:
    plain, both = tmp_path / "plain", tmp_path / "joined"
    assert transform(base_dir, csv_input, plain, "--instances", 2).returncode == 0
    done = transform(base_dir, csv_input, both, "--instances", 3, "--join-source", "Input")
    assert done.returncode == 0, done.stderr
    for path in sorted(csv_input.iterdir()):
        inputs = path.read_text().splitlines()
        answers = (plain / f"{path.name}.out").read_text().splitlines()
        expected = "".join(f"{i},{a}\n" for i, a in zip(inputs, answers, strict=True))
        assert (both / f"{path.name}.out").read_text() == expected


def test_join_source_input_adds_sagemaker_output_to_json_lines(
    base_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    records = [[float(v) for v in row.split(",")] for row in rows(300, 7)]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    plain, both = tmp_path / "plain", tmp_path / "joined"
    kind = ("--content-type", "application/jsonlines")
    assert transform(base_dir, folder, plain, *kind).returncode == 0
    done = transform(base_dir, folder, both, *kind, "--join-source", "Input", "--instances", 2)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in (plain / "a.jsonl.out").read_text().splitlines()]
    joined = [json.loads(line) for line in (both / "a.jsonl.out").read_text().splitlines()]
    assert joined == [
        {"SageMakerInput": r, "SageMakerOutput": a} for r, a in zip(records, answers, strict=True)
    ]


def test_a_failing_record_fails_the_job_naming_the_file_lines_and_the_answer(
    base_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.csv").write_text("\n".join(rows(10, 1)) + "\n")
    (folder / "bad.csv").write_text("\n".join([*rows(3, 2), "1,2,three,4"]) + "\n")
    done = transform(base_dir, folder, tmp_path / "out", "--batch-strategy", "SingleRecord")
    assert done.returncode == 1
    assert "error: the transform job failed: bad.csv lines 4-4" in done.stderr
    assert "ClientError: HTTP 400" in done.stderr
    assert not (tmp_path / "out" / "bad.csv.out").exists()
    assert not list((tmp_path / "out").glob(".*partial"))


def test_a_line_longer_than_max_payload_fails_the_job(base_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("1," * (1024 * 1024) + "1\n")
    done = subprocess.run(
        [sys.executable, str(WRAPPED), folder, tmp_path / "out",
         "--endpoint", "http://127.0.0.1:9", "--max-payload-mb", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "a.csv: line 1 (2,097,154 bytes) exceeds MaxPayloadInMB (1,048,576 bytes)" in done.stderr


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_concurrent_big_requests_are_shared_by_both_workers(
    base_dir: Path, tmp_path: Path
) -> None:
    body = ("\n".join(rows(100_000, 3)) + "\n").encode()
    with running(base_dir, tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="2") as server:
        workers = children(server.gunicorn_master)
        assert len(workers) == 2
        before = [cpu_seconds(pid) for pid in workers]
        statuses: list[int] = []

        def post(server: Server = server) -> None:
            for _ in range(4):
                headers = {"Content-Type": "text/csv"}
                statuses.append(server.request("POST", "/invocations", body, headers)[0])

        clients = [threading.Thread(target=post) for _ in range(2)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        used = [cpu_seconds(pid) - start for pid, start in zip(workers, before, strict=True)]
    assert statuses == [200] * 8
    # Each worker did about half; all to one worker, as before, gives the other nothing.
    assert min(used) > 0.25 * sum(used), used
