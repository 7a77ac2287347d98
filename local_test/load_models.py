#!/usr/bin/env python3
"""Load every model.tar.gz of a folder into a multi-model server, the way SageMaker does.

    local_test/load_models.py ARCHIVES [MODELS_DIR]     (PORT: the server's, 8080)

Each ARCHIVES/<name>.tar.gz (what `train` leaves in S3) is extracted into MODELS_DIR/<name>/model
(default $TEST_DIR/models, or local_test/test_dir/models), as SageMaker extracts a model under
/opt/ml/models, then loaded by `POST /models {"model_name": "<name>", "url": ".../model"}`. Start
the server first with SAGEMAKER_MULTI_MODEL=true (README "Multi-model endpoints"). Prints each
model's status; exits 1 if any was refused.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def extract(archive: Path, models_dir: Path) -> tuple[str, Path]:
    name = archive.name.removesuffix(".tar.gz")
    target = models_dir / name / "model"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        # "data": no absolute paths, links out of the folder or device files from an archive.
        tar.extractall(target, filter="data")
    return name, target


def load(port: int, name: str, url: Path) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        body = json.dumps({"model_name": name, "url": str(url)})
        connection.request("POST", "/models", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    archives = sorted(Path(argv[1]).glob("*.tar.gz"))
    if not archives:
        print(f"error: no .tar.gz file in {argv[1]}", file=sys.stderr)
        return 2
    test_dir = Path(os.environ.get("TEST_DIR") or HERE / "test_dir")
    models_dir = Path(argv[2]) if len(argv) == 3 else test_dir / "models"
    port = int(os.environ.get("PORT") or 8080)
    refused = 0
    for archive in archives:
        name, url = extract(archive, models_dir.resolve())
        status, answer = load(port, name, url)
        print(f"{name}: {status} {answer.strip()}")
        refused += status != 200
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
