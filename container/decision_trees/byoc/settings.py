"""Every serving tunable, resolved in one place from the environment SageMaker sets.

gunicorn.conf.py, the nginx template (rendered by `serve`) and the Flask app all read `resolve()`,
so nginx and the app can never disagree on a limit. `python3 settings.py` prints the resolved values
without starting anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from byoc import environment, memory
from byoc.cpus import available_cpus

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
"""Listen port; set by inference pipelines and multi-container endpoints."""
WORKERS_ENVS = ("SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS")
"""Worker processes; the second is the classic sample's name."""
TIMEOUT_ENVS = ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT")
"""Seconds a request may take, in gunicorn and in nginx alike."""
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
"""Request size cap in MB (MiB, as SageMaker counts them); set by batch transform jobs."""
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
"""Response type when the request has no Accept header or `*/*`."""
BATCH_ENV = "SAGEMAKER_BATCH"
"""`true` (any case) inside a batch transform job."""
INFERENCE_OUTPUT_ENV = "SAGEMAKER_INFERENCE_OUTPUT"
"""What a classifier answers per record, as in SageMaker Autopilot: a comma-separated subset of
predicted_label, probability, probabilities, labels, in the order wanted."""
LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
"""A Python logging level: a number (20) or a name (INFO)."""
MULTI_MODEL_ENV = "SAGEMAKER_MULTI_MODEL"
"""`true` (any case): serve SageMaker's multi-model API (byoc/multimodel.py), not one model."""
MME_MEMORY_LIMIT_ENV = "BYOC_MME_MEMORY_LIMIT_MB"
"""Replaces the container's memory limit in the multi-model 507 decision (tests; a limit that the
cgroup does not show)."""
ASYNC_ENV = "SAGEMAKER_ASYNC_INFERENCE"
"""`true` (any case) for an asynchronous endpoint: bodies up to 1 GB and an hour per request, and
big CSV and JSON Lines bodies predicted in blocks (byoc/streaming.py, README "Asynchronous
inference")."""
RUNTIME_DIR_ENV = "SERVE_RUNTIME_DIR"
"""Where `serve` puts the gunicorn socket and nginx's files; set by `serve` for its children."""

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
OUTPUTS = ("predicted_label", "probability", "probabilities", "labels")
MIB = 1024 * 1024
MIN_PAYLOAD_MB = 6
"""SageMaker's real-time limit (6 MB = 6,291,456 bytes): never accept less."""
MAX_PAYLOAD_MB = 100
"""SageMaker's upper bound for MaxPayloadInMB, and for MaxPayloadInMB * MaxConcurrentTransforms."""
ASYNC_MAX_PAYLOAD_MB = 1024
"""SageMaker's limit for an asynchronous request's body (1 GB), and the default there."""
ASYNC_TIMEOUT = 3600
"""SageMaker's limit for an asynchronous request's processing (InvocationTimeoutSeconds), and the
default there."""


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    """The resolved serving configuration."""

    port: int
    workers: int
    memory_limit_mib: int | None
    timeout: int
    max_payload_mb: int
    default_accept: str | None
    batch: bool
    async_inference: bool
    inference_output: tuple[str, ...]
    log_level: int
    model_dir: Path
    runtime_dir: Path
    multi_model: bool = False
    mme_memory_limit_mib: int | None = None

    @property
    def max_payload_bytes(self) -> int:
        """The request body limit, enforced by nginx and by the app."""
        return self.max_payload_mb * MIB

    @property
    def buffered_payload_mb(self) -> int:
        """The largest body a worker holds whole: every body on a real-time endpoint; on an
        asynchronous one, a body in a format that cannot be read in blocks (JSON, NPY)."""
        return min(self.max_payload_mb, MAX_PAYLOAD_MB)

    @property
    def body_buffer_bytes(self) -> int:
        """The body nginx keeps in memory; a bigger one goes to a temporary file. Every body fits
        on a real-time endpoint; on an asynchronous one, 1 GB bodies must not sit in memory."""
        return MIN_PAYLOAD_MB * MIB if self.async_inference else self.max_payload_bytes

    @property
    def max_concurrent_transforms(self) -> int:
        """Parallel batch requests to advertise: one per worker, within SageMaker's N * M <= 100."""
        return max(1, min(self.workers, MAX_PAYLOAD_MB // self.max_payload_mb))

    @property
    def socket(self) -> Path:
        """The unix socket gunicorn listens on and nginx proxies to."""
        return self.runtime_dir / "gunicorn.sock"

    @property
    def worker_sockets(self) -> tuple[Path, ...]:
        """A unix socket per worker slot, each listened on by that worker alone: nginx spreads
        requests over them (nginx.conf's upstream)."""
        return tuple(self.runtime_dir / f"worker-{slot}.sock" for slot in range(self.workers))

    def as_dict(self) -> dict[str, object]:
        """Every value, derived ones included, ready for logging as JSON."""
        values = {key: str(v) if isinstance(v, Path) else v for key, v in asdict(self).items()}
        values["max_payload_bytes"] = self.max_payload_bytes
        values["max_concurrent_transforms"] = self.max_concurrent_transforms
        values["buffered_payload_mb"] = self.buffered_payload_mb
        values["body_buffer_bytes"] = self.body_buffer_bytes
        values["worker_memory_mib"] = memory.worker_mib(self.buffered_payload_mb)
        return values


def resolve(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read every tunable from `environ`; SettingsError names a variable with an unusable value."""
    async_inference = environ.get(ASYNC_ENV, "").strip().lower() == "true"
    # SageMaker sets no payload limit on an asynchronous endpoint: its own limit is the default.
    ceiling = ASYNC_MAX_PAYLOAD_MB if async_inference else MAX_PAYLOAD_MB
    requested_mb = _first_int(environ, (MAX_PAYLOAD_ENV,), minimum=1) or (
        ceiling if async_inference else MIN_PAYLOAD_MB
    )
    max_payload_mb = min(max(requested_mb, MIN_PAYLOAD_MB), ceiling)
    model_dir = environment.paths(environ).model
    limit = memory.memory_limit()
    workers = _first_int(environ, WORKERS_ENVS, minimum=1)
    if workers is None:
        workers = available_cpus()
        if limit is not None:
            # A body read in blocks takes a bounded amount (byoc/streaming.py): only a body held
            # whole grows a worker with its size.
            buffered_mb = min(max_payload_mb, MAX_PAYLOAD_MB)
            fit = memory.workers_that_fit(limit, buffered_mb, memory.model_bytes(model_dir))
            workers = min(workers, fit)
    runtime_dir = environ.get(RUNTIME_DIR_ENV) or Path(tempfile.gettempdir(), "decision-trees")
    return Settings(
        port=_first_int(environ, (PORT_ENV,), minimum=1, maximum=65535) or DEFAULT_PORT,
        workers=workers,
        memory_limit_mib=None if limit is None else limit // MIB,
        timeout=_first_int(environ, TIMEOUT_ENVS, minimum=1)
        or (ASYNC_TIMEOUT if async_inference else DEFAULT_TIMEOUT),
        max_payload_mb=max_payload_mb,
        default_accept=environ.get(DEFAULT_ACCEPT_ENV) or None,
        batch=environ.get(BATCH_ENV, "").strip().lower() == "true",
        async_inference=async_inference,
        inference_output=_inference_output(environ.get(INFERENCE_OUTPUT_ENV, "")),
        log_level=_log_level(environ.get(LOG_LEVEL_ENV, "")),
        model_dir=model_dir,
        runtime_dir=Path(runtime_dir),
        multi_model=environ.get(MULTI_MODEL_ENV, "").strip().lower() == "true",
        mme_memory_limit_mib=_first_int(environ, (MME_MEMORY_LIMIT_ENV,), minimum=1),
    )


def _first_int(
    environ: Mapping[str, str], names: tuple[str, ...], minimum: int, maximum: int | None = None
) -> int | None:
    """The value of the first of `names` that is set, as an int within bounds; None if none is."""
    for name in names:
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise SettingsError(f"{name}={raw!r} must be at least {minimum}{upper}")
        return value
    return None


def _inference_output(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in raw.split(",") if name.strip())
    if not names:
        return (OUTPUTS[0],)
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown or len(set(names)) != len(names):
        raise SettingsError(
            f"{INFERENCE_OUTPUT_ENV}={raw!r}: expected distinct names among {', '.join(OUTPUTS)}"
        )
    return names


def _log_level(raw: str) -> int:
    names = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "WARN": 30, "INFO": 20, "DEBUG": 10}
    raw = raw.strip()
    if not raw:
        return names["INFO"]
    if raw.isdigit():
        return int(raw)
    if raw.upper() in names:
        return names[raw.upper()]
    raise SettingsError(f"{LOG_LEVEL_ENV}={raw!r} is neither a number nor a level name")


if __name__ == "__main__":
    print(json.dumps(resolve().as_dict(), indent=2))
