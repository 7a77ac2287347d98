"""Where SageMaker puts things: the names of its environment variables and the /opt/ml layout.

Everything else asks this module; nothing else spells a path or a variable name.
`SAGEMAKER_BASE_DIR` replaces `/opt/ml`, so the whole contract runs on a laptop and in tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
"""Replaces /opt/ml (tests and local runs)."""

DEFAULT_BASE_DIR = "/opt/ml"

PREDICTOR_ENV = "BYOC_PREDICTOR"
"""The model module's file (byoc/hooks.py); by default predictor.py beside train and serve."""

LEADER_PORT_ENV = "BYOC_LEADER_PORT"
"""Replaces the TCP port the leader of several training hosts holds (byoc/hosts.py)."""

LEADER_TIMEOUT_ENV = "BYOC_LEADER_TIMEOUT_S"
"""Replaces how long training hosts look for each other, in seconds (byoc/hosts.py)."""


@dataclass(frozen=True)
class Paths:
    """The /opt/ml tree of one job or endpoint."""

    base: Path

    @property
    def input_config(self) -> Path:
        """Configuration files written by the platform (read-only)."""
        return self.base / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        """hyperparameters.json: a JSON object of string to string."""
        return self.input_config / "hyperparameters.json"

    @property
    def input_data_config(self) -> Path:
        """inputdataconfig.json: one entry per channel."""
        return self.input_config / "inputdataconfig.json"

    @property
    def resource_configs(self) -> tuple[Path, Path]:
        """resourceconfig.json as real jobs name it, then resourceConfig.json as old samples do."""
        return (
            self.input_config / "resourceconfig.json",
            self.input_config / "resourceConfig.json",
        )

    @property
    def input_data(self) -> Path:
        """One directory (File mode) or FIFOs `<channel>_<epoch>` (Pipe mode) per channel."""
        return self.base / "input" / "data"

    def channel(self, name: str) -> Path:
        """The directory of one channel in File and FastFile mode."""
        return self.input_data / name

    def pipe(self, name: str, epoch: int = 0) -> Path:
        """The FIFO of one channel's epoch in Pipe mode."""
        return self.input_data / f"{name}_{epoch}"

    @property
    def model(self) -> Path:
        """Model artifacts: packed into model.tar.gz after training, unpacked here to serve."""
        return self.base / "model"

    @property
    def output(self) -> Path:
        """Holds the failure file and output/data."""
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        """Other artifacts (metrics.json); packed into output.tar.gz."""
        return self.output / "data"

    @property
    def failure(self) -> Path:
        """Why the job failed; its first 1024 characters become the job's FailureReason."""
        return self.output / "failure"


def paths(environ: Mapping[str, str] = os.environ) -> Paths:
    """The /opt/ml tree, moved to $SAGEMAKER_BASE_DIR when that is set."""
    return Paths(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))
