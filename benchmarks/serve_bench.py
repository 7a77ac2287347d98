"""Serving benchmark: wrk against the real `serve`, nginx alone, and the classic pandas predictor.

    python benchmarks/serve_bench.py [--seconds 8] [--workers N] [--repeat 3]

All three run in the same process tree, one after the other, with the same nginx and the same number
of gunicorn workers, so the ratios compare like with like on whatever machine runs them. `serve` and
the classic predictor take turns for --repeat rounds, and each figure is the median of its rounds:
on a small virtual machine one run can differ from the next by a sixth. Prints a table of
measurements and one of the ratios against the issue's targets, with the lowest and highest
round. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "container" / "decision_trees"
CLASSIC = ROOT / "benchmarks" / "classic"
sys.path[:0] = [str(PROGRAM), str(ROOT / "tests")]

from iris_model import save_iris_model  # noqa: E402

import settings  # noqa: E402

POST_LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "text/csv"
"""
NGINX_ALONE = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{ listen {port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Wrk:
    requests_per_second: float
    errors: int
    p99_ms: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wrk(url: str, seconds: int, connections: int, body: Path | None = None) -> Wrk:
    """Run wrk; POST `body` as text/csv when given, else GET."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    env = dict(os.environ)
    if body is not None:
        command += ["-s", str(body.parent / "post.lua")]
        env["BENCH_BODY"] = str(body)
    output = subprocess.run(
        [*command, url], env=env, capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    return Wrk(rate, int(errors[1]) if errors else 0, float(p99[1]) * UNITS[p99[2]])


def answers_ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.005)


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes together, in MiB."""
    total_kb = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total_kb += int(re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)[1])
    return total_kb / 1024


@contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def render(template: Path, **values: object) -> str:
    return re.sub(r"\{\{ (\w+) \}\}", lambda m: str(values[m[1]]), template.read_text())


@contextmanager
def classic_server(base: Path, workers: int, port: int) -> Iterator[list[subprocess.Popen]]:
    """The classic stack: gunicorn (gevent, no preload) on a socket, its nginx.conf in front."""
    runtime = Path(tempfile.mkdtemp(prefix="classic-", dir=base))
    runtime.chmod(0o755)
    sock = runtime / "gunicorn.sock"
    (runtime / "nginx.conf").write_text(
        render(CLASSIC / "nginx.conf", runtime_dir=runtime, socket=sock, port=port)
    )
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(PROGRAM)}
    gunicorn = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--timeout", "60"]
    gunicorn += ["-k", "gevent", "-b", f"unix:{sock}", "-w", str(workers), "wsgi:app"]
    with running(gunicorn, env, CLASSIC) as app:
        wait_for(sock.exists, 60)
        nginx = ["nginx", "-e", "stderr", "-c", str(runtime / "nginx.conf")]
        with running(nginx, env, CLASSIC) as proxy:
            yield [app, proxy]


@contextmanager
def our_server(base: Path, workers: int, port: int) -> Iterator[list[subprocess.Popen]]:
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with running([sys.executable, str(PROGRAM / "serve")], env, PROGRAM) as serve:
        yield [serve]


def cold_start(start: Callable, base: Path, workers: int) -> float:
    """Seconds from starting the processes to the first 200 from /ping."""
    port = free_port()
    started = time.monotonic()
    with start(base, workers, port):
        wait_for(lambda: answers_ping(port), 120)
        return time.monotonic() - started


def measure(start: Callable, base: Path, workers: int, seconds: int, data: dict[str, Path]) -> dict:
    results: dict[str, float] = {}
    results["cold start s"] = statistics.median(cold_start(start, base, workers) for _ in range(3))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with start(base, workers, port) as processes:
        wait_for(lambda: answers_ping(port), 120)
        wrk(f"{url}/invocations", 2, 16, data["1"])
        one_c1 = wrk(f"{url}/invocations", seconds, 1, data["1"])
        one_c16 = wrk(f"{url}/invocations", seconds, 16, data["1"])
        thousand = wrk(f"{url}/invocations", seconds, 4, data["1000"])
        big = wrk(f"{url}/invocations", seconds, 4, data["100000"])
        results["1 row c1 req/s"] = one_c1.requests_per_second
        results["1 row c1 p99 ms"] = one_c1.p99_ms
        results["1 row c16 req/s"] = one_c16.requests_per_second
        results["1 row c16 p99 ms"] = one_c16.p99_ms
        results["1,000 rows c4 rows/s"] = thousand.requests_per_second * 1000
        results["100,000 rows c4 rows/s"] = big.requests_per_second * 100_000
        results["PSS MiB"] = pss_mb([pid for p in processes for pid in tree(p.pid)])
        script = str(data["6mb"].parent / "post.lua")
        load = subprocess.Popen(
            ["wrk", "-t2", "-c4", f"-d{seconds + 2}s", "-s", script, f"{url}/invocations"],
            env={**os.environ, "BENCH_BODY": str(data["6mb"])},
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1)
        ping = wrk(f"{url}/ping", seconds, 1)
        load.wait()
        results["/ping p99 ms, 6 MB load"] = ping.p99_ms
        errors = one_c1.errors + one_c16.errors + thousand.errors + big.errors + ping.errors
        results["non-2xx answers"] = errors
    return results


def nginx_alone(base: Path, seconds: int) -> float:
    port = free_port()
    runtime = Path(tempfile.mkdtemp(prefix="nginx-", dir=base))
    (runtime / "nginx.conf").write_text(NGINX_ALONE.format(dir=runtime, port=port))
    command = ["nginx", "-e", "stderr", "-c", str(runtime / "nginx.conf")]
    with running(command, dict(os.environ), runtime):
        wait_for(lambda: answers_ping(port), 10)
        return wrk(f"http://127.0.0.1:{port}/", seconds, 16).requests_per_second


def write_data(directory: Path) -> dict[str, Path]:
    """CSV bodies of iris-like rows: 1, 1,000 and 100,000 rows (~2 MB), and ~6 MB."""
    import numpy as np

    rng = np.random.default_rng(0)
    (directory / "post.lua").write_text(POST_LUA)
    files = {}
    for name, rows in (("1", 1), ("1000", 1000), ("100000", 100_000), ("6mb", 310_000)):
        values = rng.uniform(0.1, 7.9, size=(rows, 4))
        text = "\n".join(",".join(f"{v:.2f}" for v in row) for row in values) + "\n"
        files[name] = directory / f"{name}.csv"
        files[name].write_text(text)
    assert files["6mb"].stat().st_size <= settings.MIN_PAYLOAD_MB * settings.MIB
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--workers", type=int, default=settings.available_cpus())
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each server, in turns")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as temporary:
        base = Path(temporary)
        base.chmod(0o755)
        save_iris_model(base / "model", max_leaf_nodes=5)
        data = write_data(base)
        floor = nginx_alone(base, arguments.seconds)
        our_rounds, classic_rounds = [], []
        for _ in range(arguments.repeat):
            for start, rounds in ((our_server, our_rounds), (classic_server, classic_rounds)):
                rounds.append(measure(start, base, arguments.workers, arguments.seconds, data))
    ours, classic = medians(our_rounds), medians(classic_rounds)

    print(
        f"\n{arguments.workers} workers, {os.cpu_count()} CPUs, wrk {arguments.seconds} s per run, "
        f"medians of {arguments.repeat} rounds"
    )
    print(f"nginx alone (return 200), c16: {floor:,.0f} req/s\n")
    print(f"| {'measure':<26} | {'serve':>12} | {'classic':>12} |")
    print(f"|{'-' * 28}|{'-' * 14}|{'-' * 14}|")
    for key in ours:
        print(f"| {key:<26} | {ours[key]:>12,.2f} | {classic[key]:>12,.2f} |")
    checks = [
        ("1 row c16 throughput", "1 row c16 req/s", ">= 5x"),
        ("100k-row rows/s", "100,000 rows c4 rows/s", ">= 4x"),
        ("PSS", "PSS MiB", "<= 0.5x"),
    ]
    print(f"\n| {'target':<22} | {'measured':>10} | {'rounds':>13} | {'goal':>8} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 15}|{'-' * 10}|")
    for name, key, goal in checks:
        each = sorted(o[key] / c[key] for o, c in zip(our_rounds, classic_rounds, strict=True))
        spread = f"{each[0]:.2f}-{each[-1]:.2f}x"
        print(f"| {name:<22} | {ours[key] / classic[key]:>9.2f}x | {spread:>13} | {goal:>8} |")
    print(f"| {'cold start':<22} | {ours['cold start s']:>8.2f} s | {'':>13} | {'<= 1 s':>8} |")
    ping = ours["/ping p99 ms, 6 MB load"]
    print(f"| {'/ping p99 under load':<22} | {ping:>7.1f} ms | {'':>13} | {'< 100 ms':>8} |")


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over the rounds."""
    return {key: statistics.median(round_[key] for round_ in rounds) for key in rounds[0]}


if __name__ == "__main__":
    main()
