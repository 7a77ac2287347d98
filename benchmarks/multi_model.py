"""Multi-model endpoints: load time per model, memory per loaded model per worker, and what
decides 507. Asserts nothing.

    .venv/bin/python benchmarks/multi_model.py [MODULE] [MODELS]   (default: the demo, 10 models)

Starts the real `serve` natively with SAGEMAKER_MULTI_MODEL=true and 2 workers, saves MODELS
models of MODULE (a model module, e.g. examples/random_forest/predictor.py) fitted on iris, loads
each with POST /models (timed), invokes each on both workers (by their own sockets) so that both
hold it, and reads the PSS of gunicorn's processes (what byoc/multimodel.py compares with the
limit) before and after. A first model, loaded and invoked before, is not counted.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "container" / "decision_trees"
sys.path[:0] = [str(PROGRAM), str(ROOT / "tests")]

from sklearn.datasets import load_iris  # noqa: E402

from byoc import artifacts, defaults, hooks  # noqa: E402
from byoc.memory import MIB, worker_mib  # noqa: E402

WORKERS = 2
ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


def save(module: hooks.Hooks, directory: Path, seed: int) -> None:
    iris = load_iris()
    features = iris.data.astype("float32")
    labels = load_iris().target_names[iris.target]
    estimator = module.build_estimator({})
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    estimator = module.fit(estimator, features, labels)
    metadata = {
        **defaults.metadata(estimator),
        "n_features": 4,
        "feature_names": [f"feature_{i}" for i in range(1, 5)],
        "string_columns": [],
        "label_column": None,
        "hyperparameters": {},
        "training_rows": len(features),
    }
    artifacts.save(directory, lambda staging: module.save_model(estimator, staging), metadata)


def request(
    port: int, method: str, path: str, body: bytes | None = None, kind: str = "application/json"
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body, {"Content-Type": kind})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def invoke_each_worker(runtime_dir: Path, name: str) -> None:
    """Invoke on every worker by its own socket (nginx's upstream), so that each loads the model."""
    for path in sorted(runtime_dir.glob("worker-*.sock")):
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            head = f"POST /models/{name}/invoke HTTP/1.0\r\nContent-Type: text/csv\r\n"
            client.sendall(f"{head}Content-Length: {len(ROWS)}\r\n\r\n".encode() + ROWS)
            answer = b"".join(iter(lambda: client.recv(65536), b""))
            assert answer.split(b" ", 2)[1] == b"200", answer


def group_pss(pgid: int) -> int:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (stat.parent / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


def main() -> None:
    module_path = Path(sys.argv[1] if len(sys.argv) > 1 else PROGRAM / "predictor.py").resolve()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    module = hooks.load(module_path)
    work = Path(tempfile.mkdtemp(prefix="mme-bench-"))
    for i in range(-1, count):
        save(module, work / "models" / f"m{i}" / "model", i + 1)
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(work / "opt_ml"),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MULTI_MODEL": "true",
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(WORKERS),
        "BYOC_PREDICTOR": str(module_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        [sys.executable, str(PROGRAM / "serve")], env=env, stdout=log, stderr=log
    )
    try:
        for _ in range(600):
            try:
                if request(port, "GET", "/ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        master = int(subprocess.check_output(["pgrep", "-P", str(serve.pid), "-f", "gunicorn"]))
        pgid = os.getpgid(master)
        runtime_dir = Path(
            next(
                json.loads(line)["settings"]["runtime_dir"]
                for line in (work / "serve.log").read_text().splitlines()
                if '"settings"' in line
            )
        )
        # A first model, not counted: each worker imports the module's libraries at its first.
        started = time.monotonic()
        url = str(work / "models" / "m-1" / "model")
        body = json.dumps({"model_name": "m-1", "url": url}).encode()
        assert request(port, "POST", "/models", body)[0] == 200
        first = time.monotonic() - started
        invoke_each_worker(runtime_dir, "m-1")
        before = group_pss(pgid)
        seconds = []
        for i in range(count):
            url = str(work / "models" / f"m{i}" / "model")
            started = time.monotonic()
            body = json.dumps({"model_name": f"m{i}", "url": url}).encode()
            status, answer = request(port, "POST", "/models", body)
            seconds.append(time.monotonic() - started)
            assert status == 200, answer
        for i in range(count):
            invoke_each_worker(runtime_dir, f"m{i}")
        after = group_pss(pgid)
        per_model = (after - before) / count / WORKERS
        files = sum(p.stat().st_size for p in (work / "models" / "m0" / "model").iterdir())
        print(f"module {module_path.relative_to(ROOT)}, {count} models, {WORKERS} workers")
        print(f"model files: {files / 1024:.0f} KiB")
        print(f"first POST /models: {first * 1000:.0f} ms")
        print(
            f"POST /models: median {statistics.median(seconds) * 1000:.0f} ms, "
            f"max {max(seconds) * 1000:.0f} ms"
        )
        print(
            f"server PSS: {before / MIB:.0f} MiB with the first model, {after / MIB:.0f} MiB with "
            f"{count} in each worker: {per_model / MIB:.2f} MiB per model per worker"
        )
        peaks = WORKERS * worker_mib(6)
        print(
            f"507 when PSS + the model x (workers - 1) + {peaks} MiB (request peaks) > limit: "
            f"with no model, a limit under {before / MIB + peaks:.0f} MiB refuses the first"
        )
    finally:
        serve.terminate()
        serve.wait(60)
        log.close()


if __name__ == "__main__":
    main()
