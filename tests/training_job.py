"""A training job's /opt/ml tree in a temporary folder, and `train` run on it as SageMaker does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROGRAM_DIR = REPO / "container" / "decision_trees"
IRIS = REPO / "local_test" / "test_dir" / "input" / "data"


def rows(n: int, features: int = 3, classes: int = 2, seed: int = 0) -> str:
    """CSV text: `n` rows of a label (class_0, class_1, ...) and features that predict it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    values = rng.random((n, features)) + labels[:, None]
    return "".join(
        f"class_{label}," + ",".join(f"{v:.4f}" for v in row) + "\n"
        for label, row in zip(labels, values, strict=True)
    )


@dataclass
class Job:
    """An /opt/ml tree: write config files and data into it, then run `train`."""

    base: Path
    environment: dict[str, str] = field(default_factory=dict)
    """Variables `train` gets besides this process's own."""

    def config(self, name: str, content: Any) -> Path:
        path = self.base / "input" / "config" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    def hyperparameters(self, values: dict[str, Any]) -> None:
        self.config("hyperparameters.json", values)

    def channels(self, **settings: dict[str, str]) -> None:
        """inputdataconfig.json with these channels (name=settings)."""
        self.config("inputdataconfig.json", settings)

    def data(self, relative: str, content: str | bytes) -> Path:
        """Write a file under input/data."""
        path = self.base / "input" / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return path

    def iris(self) -> Job:
        """The bundled iris data as training and validation channels, without config files."""
        self.data("training/iris.csv", (IRIS / "training" / "iris.csv").read_bytes())
        self.data("validation/iris.csv", (IRIS / "validation" / "iris.csv").read_bytes())
        return self

    def command(self, *args: str) -> list[str]:
        return ["train", *args]

    def env(self) -> dict[str, str]:
        """`train` on PATH (as in the image), run by this virtual environment's Python."""
        path = os.pathsep.join(
            [str(PROGRAM_DIR), str(Path(sys.executable).parent), os.environ["PATH"]]
        )
        return {
            **os.environ,
            "PATH": path,
            "SAGEMAKER_BASE_DIR": str(self.base),
            **self.environment,
        }

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    def failure_reason(self) -> str:
        """The first line of the failure file: what SageMaker shows as FailureReason."""
        return self.failure.read_text(encoding="utf-8").splitlines()[0]

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    def metadata(self) -> dict[str, Any]:
        return json.loads((self.model_dir / "metadata.json").read_text())

    def metrics(self) -> dict[str, float]:
        return json.loads((self.base / "output" / "data" / "metrics.json").read_text())
