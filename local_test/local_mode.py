#!/usr/bin/env python3
"""The SageMaker Python SDK's local mode against the image: fit, deploy, predict, transform.

usage: local_test/local_mode.py IMAGE [--instances N] [--port PORT]

Runs what a user runs on a laptop with `instance_type="local"`: the SDK writes a docker-compose
file and runs the image with `train`, then with `serve`, and sends the requests itself. Needs
docker, docker-compose (Debian's package) and the SDK (`pip install "sagemaker<3"`); no AWS
account: nothing is sent to AWS (telemetry is opted out, the role is never used). Everything it
makes goes into a temporary folder, removed at the end with the containers the SDK leaves behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

LOCAL_TEST = Path(__file__).resolve().parent
TEST_DIR = LOCAL_TEST / "test_dir"
PAYLOAD = LOCAL_TEST / "payload.csv"
ROLE = "arn:aws:iam::111122223333:role/local-mode"
"""Local mode never uses the role, but a name without an ARN makes the SDK ask IAM for it."""

REGION = "us-east-1"
"""Local mode never calls a region, but boto3 needs one to build its clients."""

SDK_CONFIG = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)
"""The SDK sends telemetry to AWS at every fit, deploy and transform unless this opts out."""

HYPERPARAMETERS = {
    "max_leaf_nodes": 5,
    "class_weight": {"setosa": 1, "versicolor": 2, "virginica": 2},
}
"""The generic Estimator writes the dict as Python's str(): `{'setosa': 1, ...}`."""


def prepare_environment(folder: Path) -> None:
    """What keeps the SDK from calling AWS, unless the user has set it otherwise."""
    if "SAGEMAKER_USER_CONFIG_OVERRIDE" not in os.environ:
        config = folder / "sagemaker-config.yaml"
        config.write_text(SDK_CONFIG)
        os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(config)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    # Without credentials, boto3 would look for an instance's at its metadata address.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def local_session(port: int, root: Path) -> Any:
    """A LocalSession serving on `port` (not 8080) and keeping its files under `root`."""
    from sagemaker.local import LocalSession

    session = LocalSession()
    # Its settings are an attribute, not constructor arguments.
    session.config = {
        "local": {"local_code": True, "serving_port": port, "container_root": str(root)}
    }
    return session


def fit(session: Any, image: str, instances: int, output: Path) -> Any:
    """Train on local_test/test_dir's channels with `instances` containers; the estimator."""
    from sagemaker.estimator import Estimator

    estimator = Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=instances,
        instance_type="local",
        output_path=output.as_uri(),
        hyperparameters=HYPERPARAMETERS,
        sagemaker_session=session,
    )
    data = TEST_DIR / "input" / "data"
    estimator.fit(
        {"training": (data / "training").as_uri(), "validation": (data / "validation").as_uri()}
    )
    return estimator


def model_files(estimator: Any) -> dict[str, bytes]:
    """The files of the model.tar.gz that `fit` made."""
    location = Path(estimator.model_data.removeprefix("file://"))
    with tarfile.open(location) as archive:
        return {
            member.name.removeprefix("./"): archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def predict(estimator: Any, rows: str) -> tuple[str, dict[str, Any]]:
    """Deploy the model, predict `rows` as CSV and as JSON, and delete the endpoint."""
    from sagemaker.deserializers import JSONDeserializer, StringDeserializer
    from sagemaker.serializers import CSVSerializer

    predictor = estimator.deploy(initial_instance_count=1, instance_type="local")
    try:
        predictor.serializer = CSVSerializer()
        predictor.deserializer = StringDeserializer(accept="text/csv")
        as_csv = predictor.predict(rows)
        predictor.deserializer = JSONDeserializer()
        as_json = predictor.predict(rows)
    finally:
        predictor.delete_endpoint()
    return as_csv, as_json


def transform(estimator: Any, rows: str, folder: Path) -> str:
    """A batch transform of `rows` written as one CSV file; the output file's text."""
    source = folder / "transform-input"
    source.mkdir()
    (source / "payload.csv").write_text(rows)
    output = folder / "transform-output"
    transformer = estimator.transformer(
        instance_count=1,
        instance_type="local",
        # Without it, local mode takes /execution-parameters' "MULTI_RECORD" (the API's spelling)
        # and fails: it knows only the SDK's own "MultiRecord".
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        output_path=output.as_uri(),
    )
    # logs=False: the default reads the job's logs from CloudWatch, which local mode has not.
    transformer.transform(source.as_uri(), content_type="text/csv", split_type="Line", logs=False)
    return (output / "payload.csv.out").read_text()


def remove_leftovers(root: Path, network: bool = True) -> list[str]:
    """Remove the containers the SDK left under `root` (it never runs `compose down`) and its
    network; the ids of the containers removed."""
    listed = subprocess.run(
        ["docker", "ps", "--all", "--filter", "label=com.docker.compose.project.working_dir",
         "--format", '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}'],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    ours = [
        line.split(" ", 1)[0]
        for line in listed.splitlines()
        if Path(line.split(" ", 1)[1]).is_relative_to(root)
    ]
    if ours:
        subprocess.run(["docker", "rm", "--force", *ours], capture_output=True, check=True)
    if network:
        # Fails harmlessly while another local-mode job of the user still uses it.
        subprocess.run(["docker", "network", "rm", "sagemaker-local"], capture_output=True)
    return ours


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="the image to run, e.g. decision-trees:latest")
    parser.add_argument("--instances", type=int, default=2, help="training containers (default 2)")
    parser.add_argument("--port", type=int, default=8080, help="the endpoint's port (default 8080)")
    args = parser.parse_args(argv[1:])

    folder = Path(tempfile.mkdtemp(prefix="local-mode-"))
    try:
        prepare_environment(folder)
        session = local_session(args.port, folder)
        estimator = fit(session, args.image, args.instances, folder / "output")
        print(f"model: {sorted(model_files(estimator))}")
        rows = PAYLOAD.read_text()
        as_csv, as_json = predict(estimator, rows)
        print(f"predictions (CSV):\n{as_csv}predictions (JSON): {json.dumps(as_json)}")
        print(f"batch transform:\n{transform(estimator, rows, folder)}", end="")
    finally:
        remove_leftovers(folder)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
