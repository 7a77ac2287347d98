"""local_test/ with an IMAGE argument: train, serve and predict through the real image."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .conftest import REPO, TEST_DIR
from .engine import Engine
from .services import free_port

LOCAL_TEST = REPO / "local_test"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def ping(port: int) -> int | None:
    """The status of GET /ping, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_for_ping(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"serve_local.sh exited with {server.returncode}"
        if ping(port) == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"/ping did not answer 200 within {READY_TIMEOUT_S:.0f} s")


def test_train_serve_and_predict_through_the_image(
    engine: Engine, image: str, docker_env: dict[str, str]
) -> None:
    """train_local.sh IMAGE writes test_dir/model; serve_local.sh IMAGE serves it on $PORT until
    SIGTERM; predict.sh gets one prediction per payload row."""
    trained = subprocess.run(
        [str(LOCAL_TEST / "train_local.sh"), image],
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (TEST_DIR / "model" / "model.skops").is_file()
    assert not (TEST_DIR / "output" / "failure").exists()

    port = free_port()
    env = {**docker_env, "PORT": str(port)}
    server = subprocess.Popen(
        [str(LOCAL_TEST / "serve_local.sh"), image],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_ping(port, server)
        payload = LOCAL_TEST / "payload.csv"
        predicted = subprocess.run(
            [str(LOCAL_TEST / "predict.sh"), str(payload)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert predicted.returncode == 0, predicted.stderr
        rows = [line for line in payload.read_text().splitlines() if line.strip()]
        assert len(predicted.stdout.splitlines()) == len(rows)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(STOP_TIMEOUT_S)
        finally:
            server.kill()
    assert engine.run("ps", "--all", "--quiet", "--filter", f"ancestor={image}").stdout == ""


def test_an_image_without_an_engine_is_an_error_not_a_native_run(
    image: str, docker_env: dict[str, str], tmp_path: Path
) -> None:
    """Asked to use an image, the scripts refuse to quietly run natively instead."""
    env = {**docker_env, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    for script in ("train_local.sh", "serve_local.sh"):
        result = subprocess.run(
            [str(LOCAL_TEST / script), image], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0, script
        assert "no Docker engine answers" in result.stderr
