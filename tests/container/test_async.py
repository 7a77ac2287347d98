"""An asynchronous endpoint in the image: a body twice batch transform's largest, in 512 MiB.

    docker run --memory 512m --env SAGEMAKER_ASYNC_INFERENCE=true IMAGE serve

Held whole, 200 MiB of CSV would take a worker gigabytes; read in blocks (byoc/streaming.py) it
is answered in full by the image's own nginx and gunicorn, and no process is killed for memory.
tests/functional/test_async.py checks the rest natively.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .engine import Engine
from .serving import running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from async_bench import expected_digest, pattern, post, repeated

MIB = 1024 * 1024


def test_a_200_mib_csv_body_is_answered_in_512_mib(
    engine: Engine, image: str, model_dir: Path
) -> None:
    env = {"SAGEMAKER_ASYNC_INFERENCE": "true", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with running_server(engine, image, model_dir, env=env, docker_options=["--memory=512m"]) as up:
        unit = pattern()
        times = 200 * MIB // len(unit)
        expected, length = expected_digest(up.port, unit, times)

        answer = post(up.port, repeated(unit, times), len(unit) * times, timeout=600)

        assert answer.status == 200, answer.head
        assert answer.complete and answer.length == length
        assert answer.digest == expected
        assert up.get("/ping").status == 200
        state = engine.run(
            "inspect", "--format", "{{.State.OOMKilled}} {{.State.Running}}", up.container
        )
        assert state.stdout.split() == ["false", "true"]
        logs = engine.run("logs", up.container).stderr
        assert "Booting worker" in logs and logs.count("Booting worker") == 1, "a worker died"
