"""SageMaker's multi-model endpoint (MME) API: many models, loaded and unloaded while serving.

    POST   /models                 {"model_name", "url"}: load (409 loaded, 507 no room)
    GET    /models                 {"models": [{"modelName", "modelUrl"}], "nextPageToken"}
    GET    /models/<name>          {"modelName", "modelUrl"}
    DELETE /models/<name>          unload (404 unknown)
    POST   /models/<name>/invoke   as /invocations, with that model

The registry of loaded models is a folder of small JSON files under serve's runtime directory,
changed under a file lock, so that every gunicorn worker sees the same models: the worker that
takes POST /models loads the model and measures what it took; every other worker loads it at its
first request for it (its own copy: a model loaded after the fork cannot be shared). Loads run in
real threads, never on the worker's event loop, so /ping and the other models are answered
meanwhile. A worker drops a model that is no longer registered, and gives its memory back.

"No room" (507) is decided from the container's memory limit (memory.py, or
BYOC_MME_MEMORY_LIMIT_MB in settings.py) against what the server's processes use now (their PSS)
plus each model's measured size in every worker that has not loaded it yet, leaving each worker its
peak for one request at the payload limit.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import gc
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, request

from byoc import artifacts, defaults, formats, logs, memory
from byoc.app import _log_failure, _outcome
from byoc.hooks import Hooks
from byoc.settings import Settings

log = logging.getLogger("byoc")

T = TypeVar("T")

PAGE_SIZE = 100
"""Models per page of GET /models when the request gives no `page_size`."""
SWEEP_SECONDS = 1.0
"""How often a worker holding models looks for any unloaded by another worker."""


class MultiModelError(Exception):
    """A request of the MME API that cannot be served; becomes `status` with a JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Entry:
    """A registered model, as the registry's file holds it."""

    name: str
    url: str
    id: str
    """Unique per load: a model unloaded and loaded again under the same name is a new model."""
    state: str
    """"loading" (reserved by the worker `pid`), or "loaded"."""
    pid: int
    worker_bytes: int
    """What loading it took in one worker, measured."""
    holders: tuple[int, ...] = ()
    """The workers (pids) that have loaded it."""

    def listed(self) -> dict[str, str]:
        return {"modelName": self.name, "modelUrl": self.url}


@dataclass
class Loaded:
    """A model this worker has loaded."""

    id: str
    model: Any
    columns: formats.Columns


class Registry:
    """The models every worker serves: one JSON file per model in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = directory / ".lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a name is checked and reserved, or removed: never while a model loads."""
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _path(self, name: str) -> Path:
        # Names are opaque (SageMaker's hash of the S3 key, or the caller's): never a file name.
        return self.directory / f"{hashlib.sha256(name.encode()).hexdigest()}.json"

    def get(self, name: str) -> Entry | None:
        try:
            return _entry(json.loads(self._path(name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def entries(self) -> list[Entry]:
        found = []
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError):
                found.append(_entry(json.loads(path.read_text())))
        return found

    def put(self, entry: Entry) -> None:
        path = self._path(entry.name)
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(entry.__dict__))
        # Atomic: a worker reading the entry sees the old one or the new one, never half of it.
        staging.replace(path)

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class Models:
    """One worker's side of the MME API: the registry and the models this worker has loaded."""

    def __init__(self, hooks: Hooks, settings: Settings) -> None:
        self.hooks = hooks
        self.settings = settings
        self.registry = Registry(settings.runtime_dir / "models")
        limit_mib = settings.mme_memory_limit_mib or settings.memory_limit_mib
        self.limit_bytes = None if limit_mib is None else limit_mib * memory.MIB
        self.loaded: dict[str, Loaded] = {}
        self._watching = False
        self._swept_at = 0
        self._loading: dict[str, Any] = {}

    def load(self, name: str, url: str) -> None:
        """Load `name` from the folder `url` in this worker and register it for every worker.

        Blocks on the registry's lock and on model_fn: call it in a real thread (`in_thread`).
        """
        model_dir = Path(url)
        if not model_dir.is_dir():
            raise MultiModelError(404, f"no model folder at url {url!r}")
        with self.registry.locked():
            existing = self.registry.get(name)
            if existing is not None and not self._stale(existing):
                raise MultiModelError(409, f"model {name!r} is already loaded")
            self._check_room(0)
            entry = Entry(name, url, uuid.uuid4().hex, "loading", os.getpid(), 0)
            self.registry.put(entry)
        try:
            before = _resident_bytes()
            started = time.monotonic()
            loaded = self._load(entry.id, model_dir)
            took = max(_resident_bytes() - before, memory.model_bytes(model_dir))
            with self.registry.locked():
                # Every other worker will load its own copy: there must be room for all of them.
                self._check_room(took * (self.settings.workers - 1))
                self.registry.put(
                    Entry(name, url, entry.id, "loaded", os.getpid(), took, (os.getpid(),))
                )
        except BaseException:
            self.registry.remove(name)
            raise
        self.loaded[name] = loaded
        log.info(
            "model loaded",
            extra={
                "model": name,
                "seconds": round(time.monotonic() - started, 3),
                "worker_mib": round(took / memory.MIB, 1),
            },
        )

    def unload(self, name: str) -> None:
        with self.registry.locked():
            entry = self.registry.get(name)
            if entry is None or entry.state != "loaded":
                raise MultiModelError(404, f"model {name!r} is not loaded")
            self.registry.remove(name)
        self.sweep()

    def model(self, name: str) -> Loaded:
        """`name` as this worker has loaded it, loading it now (in a thread) if it has not."""
        self._watch()
        entry = self.registry.get(name)
        if entry is None or entry.state != "loaded":
            self.sweep()
            raise MultiModelError(404, f"model {name!r} is not loaded")
        loaded = self.loaded.get(name)
        if loaded is not None and loaded.id == entry.id:
            return loaded
        self.loaded.pop(name, None)
        # Concurrent requests for a model this worker has not loaded yet wait for one load.
        pending = self._loading.get(entry.id)
        if pending is None:
            pending = self._loading[entry.id] = _start_in_thread(lambda: self._hold(entry))
        try:
            loaded = _result(pending)
        finally:
            self._loading.pop(entry.id, None)
        self.loaded[name] = loaded
        return loaded

    def _watch(self) -> None:
        """Once this worker holds a model, drop it within SWEEP_SECONDS of its unloading by any
        worker, even if no request reaches this one again: a greenlet of the worker's loop."""
        if self._watching:
            return
        self._watching = True
        try:
            import gevent
            from gevent import monkey
        except ImportError:
            return
        if monkey.is_module_patched("threading"):
            gevent.spawn(self._sweep_forever)

    def _sweep_forever(self) -> None:
        import gevent

        while True:
            gevent.sleep(SWEEP_SECONDS)
            if not self.loaded:
                continue
            try:
                # A file created or removed in the registry changes its folder's mtime.
                changed = self.registry.directory.stat().st_mtime_ns
            except OSError:
                continue
            if changed != self._swept_at:
                self._swept_at = changed
                self.sweep()

    def sweep(self) -> None:
        """Drop every model this worker holds that is no longer registered (unloaded elsewhere)."""
        current = {entry.name: entry.id for entry in self.registry.entries()}
        self._drop_all_but({name for name, m in self.loaded.items() if current.get(name) == m.id})

    def _drop_all_but(self, keep: set[str]) -> None:
        dropped = [name for name in self.loaded if name not in keep]
        for name in dropped:
            del self.loaded[name]
        if dropped:
            gc.collect()
            _trim()

    def _hold(self, entry: Entry) -> Loaded:
        """Load a registered model in this worker, and record that this worker holds it: its
        copy is in the server's memory from now on, no longer to be reserved."""
        loaded = self._load(entry.id, Path(entry.url))
        with self.registry.locked():
            current = self.registry.get(entry.name)
            if current is not None and current.id == entry.id:
                holders = (*current.holders, os.getpid())
                self.registry.put(replace(current, holders=holders))
        return loaded

    def _load(self, model_id: str, model_dir: Path) -> Loaded:
        try:
            model = self.hooks.model_fn(model_dir)
        except artifacts.ModelError as e:
            raise MultiModelError(400, f"the model cannot be loaded: {e}") from None
        except Exception as e:
            # As app.py logs a hook's failure: where, never the message (it may quote the data).
            fields = {"error": type(e).__name__, "traceback": logs.frames(e.__traceback__)}
            log.error("model_fn failed", extra={"hook": "model_fn", **fields})
            raise MultiModelError(500, "the model failed in model_fn") from None
        return Loaded(model_id, model, defaults.columns_of(model, model_dir))

    def _stale(self, entry: Entry) -> bool:
        """A reservation whose worker died while loading: the name may be loaded again."""
        return entry.state == "loading" and not _alive(entry.pid)

    def _check_room(self, more_bytes: int) -> None:
        """507 unless `more_bytes` fit beside what the server uses now and each worker's peak
        for one request."""
        if self.limit_bytes is None:
            return
        used = server_bytes()
        peaks = self.settings.workers * memory.worker_mib(self.settings.max_payload_mb) * memory.MIB
        # The copies of loaded models that workers have yet to load, at their first request.
        more_bytes += sum(
            entry.worker_bytes * max(0, self.settings.workers - sum(map(_alive, entry.holders)))
            for entry in self.registry.entries()
            if entry.state == "loaded"
        )
        if used + more_bytes + peaks > self.limit_bytes:
            raise MultiModelError(
                507,
                f"no room: the server uses {used // memory.MIB} MiB, loading needs "
                f"{more_bytes // memory.MIB} MiB more in the workers, their request peaks "
                f"{peaks // memory.MIB} MiB, of {self.limit_bytes // memory.MIB} MiB",
            )


def register(
    app: Flask, models: Models, invoke: Callable[[Any, formats.Columns], Response]
) -> None:
    """Add the MME routes to `app`; `invoke` answers /invocations' request with a model."""

    @app.post("/models")
    def load() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise MultiModelError(400, 'send a JSON object {"model_name": ..., "url": ...}')
        name, url = body.get("model_name"), body.get("url")
        if not (isinstance(name, str) and name and isinstance(url, str) and url):
            raise MultiModelError(400, "model_name and url must be non-empty strings")
        if "/" in name:
            raise MultiModelError(400, "model_name cannot hold a slash")
        in_thread(lambda: models.load(name, url))
        return jsonify(status=f"Model {name} loaded")

    @app.get("/models")
    def listed() -> Response:
        models.sweep()
        page_size = request.args.get("page_size", str(PAGE_SIZE))
        if not page_size.isdigit() or int(page_size) < 1:
            raise MultiModelError(400, "page_size must be a positive whole number")
        after = _token_name(request.args.get("next_page_token", ""))
        entries = sorted(models.registry.entries(), key=lambda e: e.name)
        remaining = [e for e in entries if e.state == "loaded" and e.name > after]
        page = remaining[: int(page_size)]
        answer: dict[str, Any] = {"models": [e.listed() for e in page]}
        if len(remaining) > len(page):
            answer["nextPageToken"] = base64.urlsafe_b64encode(page[-1].name.encode()).decode()
        return jsonify(answer)

    @app.get("/models/<name>")
    def described(name: str) -> Response:
        entry = models.registry.get(name)
        if entry is None or entry.state != "loaded":
            raise MultiModelError(404, f"model {name!r} is not loaded")
        return jsonify(entry.listed())

    @app.delete("/models/<name>")
    def unload(name: str) -> Response:
        in_thread(lambda: models.unload(name))
        return jsonify(status=f"Model {name} unloaded")

    @app.post("/models/<name>/invoke")
    def invoke_model(name: str) -> Response:
        loaded = models.model(name)
        return invoke(loaded.model, loaded.columns)

    @app.errorhandler(MultiModelError)
    def failed(error: MultiModelError) -> tuple[Response, int]:
        _log_failure(error.status, error)
        return jsonify(error=str(error)), error.status


def _entry(fields: dict[str, Any]) -> Entry:
    return Entry(**{**fields, "holders": tuple(fields.get("holders", ()))})


def _token_name(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.b64decode(token, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise MultiModelError(400, "next_page_token is not one this server gave") from None


def server_bytes() -> int:
    """The memory the server's processes use: the PSS of every process in gunicorn's process
    group (serve starts it in one of its own), so that pages shared after the fork count once."""
    group = os.getpgid(0)
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def _resident_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _trim() -> None:
    """Give the heap's free memory back to the kernel: serve's glibc tunables keep it otherwise."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


_LOADERS: list[Any] = []


def _loader_pool() -> Any:
    """A real-thread pool for loads, apart from the requests' (app.py): a slow load never holds
    a thread that a big request needs. None outside a gevent worker."""
    if not _LOADERS:
        try:
            from gevent import monkey
            from gevent.threadpool import ThreadPool
        except ImportError:
            _LOADERS.append(None)
        else:
            patched = monkey.is_module_patched("threading")
            _LOADERS.append(ThreadPool(2) if patched else None)
    return _LOADERS[0]


def _start_in_thread(function: Callable[[], T]) -> Any:
    """Start `function` in a real thread; `_result` waits for it without blocking other
    greenlets. Outside gevent it runs now."""
    pool = _loader_pool()
    if pool is None:
        return _outcome(function)
    return pool.spawn(_outcome, function)


def _result(pending: Any) -> Any:
    succeeded, result = pending if isinstance(pending, tuple) else pending.get()
    if not succeeded:
        raise result
    return result


def in_thread(function: Callable[[], T]) -> T:
    return _result(_start_in_thread(function))
