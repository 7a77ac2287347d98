"""moto's server on loopback standing in for SageMaker, S3 and SageMaker Runtime.

moto answers every API call the walkthrough makes but runs no container: jobs complete at once
without artifacts or metrics, InvokeEndpoint answers what a test queues, and a transform job
writes no output.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sagemaker_walkthrough as walkthrough

IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/decision-trees:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "walkthrough-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server() -> Iterator[str]:
    """moto's server on a free loopback port, ready to answer; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def reset(url: str) -> None:
    """Forget every resource created so far."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()


def environment(url: str, config_dir: Path) -> dict[str, str]:
    """Variables that send every AWS call to moto with fake credentials and opt in to Part 3.

    The SDK also sends telemetry to AWS by itself: a proxy that refuses keeps it on loopback.
    """
    return {
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        walkthrough.OPT_IN_ENV: "1",
        walkthrough.IMAGE_URI_ENV: IMAGE_URI,
        walkthrough.ROLE_ENV: ROLE,
        walkthrough.BUCKET_ENV: BUCKET,
    }


UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
"""Variables of a developer's own AWS setup that must not leak into a test."""


def queue_endpoint_answers(url: str, bodies: list[str]) -> None:
    """What InvokeEndpoint answers next, one body per distinct request."""
    results = [
        {"Body": body, "ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic"}
        for body in bodies
    ]
    request = urllib.request.Request(
        f"{url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"results": results}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).close()
