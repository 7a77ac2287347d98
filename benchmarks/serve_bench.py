"""Serving benchmark: wrk against the real `serve`, nginx alone, and the classic pandas predictor.

    python benchmarks/serve_bench.py [--models demo,random_forest,gradient_boosting_regressor]
        [--seconds 5] [--repeat 3] [--workers N] [--old PATH] [--env NAME=VALUE ...]

Each model is served in turn by `serve` and by the classic predictor (benchmarks/classic/: the
original sample's pandas read_csv -> predict -> to_csv, gunicorn gevent workers behind nginx), with
the same number of workers:
- demo: the demo model module's tree (tests/iris_model.py, max_leaf_nodes=5), with the bodies of
  the earlier figures (uniform random iris-like rows) and every measure;
- an example of examples/ (trained by `train` from a copy of its test_dir): cold start, PSS, 1-row
  requests (its payload's first row) and 100,000-row ones (its payload's rows repeated, missing
  values included).
--old PATH serves the demo with a checkout of another commit too (`git worktree add PATH REV`),
its model saved by that checkout's tests/iris_model.py: same machine, same rounds.

The servers take turns for --repeat rounds (their order rotating from round to round); each
figure is the median of its rounds, shown with its spread (half the range between the lowest and
highest round, in % of the median): on a small virtual machine one round can differ from the next
by a sixth. A round's cold start is the time from starting the processes to the first 200 from
/ping of the server it then measures. PSS counts every process of the server: nginx, gunicorn's
master and its workers (and `serve` itself); so does CPU time per request, measured from /proc
during a wrk run, which depends much less than requests per second on what else the machine
runs. Prints Markdown tables. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "container" / "decision_trees"
CLASSIC = ROOT / "benchmarks" / "classic"
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(PROGRAM))

from byoc import settings  # noqa: E402
from byoc.cpus import available_cpus  # noqa: E402

DEMO = "demo"
DEFAULT_MODELS = (DEMO, "random_forest", "gradient_boosting_regressor")
BIG_ROWS = 100_000

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

COLD = "cold start s"
PSS = "PSS MiB"
C16 = "1 row c16 req/s"
C16_CPU = "1 row c16 CPU ms/request"
BIG = "100,000 rows c4 rows/s"
BIG_CPU = "100,000 rows CPU ms/request"
ERRORS = "errors (non-2xx, socket)"
GOALS = {C16: ">= 5x", BIG: ">= 4x", PSS: "<= 0.5x", COLD: "<= 1 s"}
"""The issue's targets for `serve` against the classic predictor (the demo tree)."""


@dataclass
class Wrk:
    requests_per_second: float
    errors: int
    p99_ms: float
    requests: int
    cpu_ms: float = 0.0
    """CPU time of the server's processes per request answered (see `wrk_cpu`)."""


@dataclass
class Case:
    """A model to serve: its name, its model module (None: the default) and its bodies."""

    name: str
    predictor: Path | None
    bodies: dict[str, Path]
    full: bool
    """Every measure (the demo), or cold start, PSS, 1-row c16 and 100,000 rows only."""
    servers: list[Server] = field(default_factory=list)


@dataclass
class Server:
    name: str
    start: Callable[[int], AbstractContextManager[list[subprocess.Popen]]]
    """Starts the server on a port; yields its top processes."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wrk(url: str, seconds: int, connections: int, body: Path | None = None) -> Wrk:
    """Run wrk; POST `body` as text/csv when given, else GET."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", "30s", "--latency"]
    env = dict(os.environ)
    if body is not None:
        command += ["-s", str(body.parent / "post.lua")]
        env["BENCH_BODY"] = str(body)
    output = subprocess.run(
        [*command, url], env=env, capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    count = (int(errors[1]) if errors else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    requests = int(re.search(r"(\d+) requests in", output)[1])
    return Wrk(rate, count, float(p99[1]) * UNITS[p99[2]], requests)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time these processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk_cpu(pids: list[int], *arguments: object) -> Wrk:
    """wrk, and the CPU time the server's processes spent per request meanwhile.

    CPU per request hardly depends on what else the machine runs, unlike requests per second.
    """
    before = cpu_seconds(pids)
    run = wrk(*arguments)
    run.cpu_ms = (cpu_seconds(pids) - before) * 1000 / max(1, run.requests)
    return run


def print_rows(rows: list[dict[str, object]]) -> None:
    """Rows of the same keys as a Markdown table, the keys as its header."""
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


def answers_ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what or condition}")
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


def model_env(base: Path, predictor: Path | None) -> dict[str, str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    env.pop("BYOC_PREDICTOR", None)
    if predictor is not None:
        env["BYOC_PREDICTOR"] = str(predictor)
    return env


@contextmanager
def classic_server(
    base: Path, predictor: Path | None, workers: int, port: int
) -> Iterator[list[subprocess.Popen]]:
    """The classic stack: gunicorn (gevent, no preload) on a socket, its nginx.conf in front."""
    runtime = Path(tempfile.mkdtemp(prefix="classic-", dir=base))
    runtime.chmod(0o755)
    sock = runtime / "gunicorn.sock"
    (runtime / "nginx.conf").write_text(
        render(CLASSIC / "nginx.conf", runtime_dir=runtime, socket=sock, port=port)
    )
    env = model_env(base, predictor)
    gunicorn = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--timeout", "60"]
    gunicorn += ["-k", "gevent", "-b", f"unix:{sock}", "-w", str(workers), "wsgi:app"]
    with running(gunicorn, env, CLASSIC) as app:
        wait_for(sock.exists, 60, "the classic gunicorn's socket")
        nginx = ["nginx", "-e", "stderr", "-c", str(runtime / "nginx.conf")]
        with running(nginx, env, CLASSIC) as proxy:
            yield [app, proxy]


@contextmanager
def serve_server(
    program: Path,
    base: Path,
    predictor: Path | None,
    workers: int,
    port: int,
    environ: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen]]:
    """`serve` of `program` (this checkout's container/decision_trees, or another's)."""
    env = {
        **model_env(base, predictor),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(environ or {}),
    }
    with running([sys.executable, str(program / "serve")], env, program) as serve:
        yield [serve]


def measure(server: Server, seconds: int, case: Case) -> dict[str, float]:
    """One round of one server: started cold, then wrk runs, then its memory."""
    bodies = case.bodies
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict[str, float] = {}
    started = time.monotonic()
    with server.start(port) as processes:
        wait_for(lambda: answers_ping(port), 120, f"{server.name} to answer /ping")
        results[COLD] = time.monotonic() - started
        invocations = f"{url}/invocations"
        wrk(invocations, 2, 16, bodies["1"])
        pids = [pid for p in processes for pid in tree(p.pid)]
        runs = []
        if case.full:
            one_c1 = wrk(invocations, seconds, 1, bodies["1"])
            runs.append(one_c1)
            results["1 row c1 req/s"] = one_c1.requests_per_second
            results["1 row c1 p99 ms"] = one_c1.p99_ms
        one_c16 = wrk_cpu(pids, invocations, seconds, 16, bodies["1"])
        runs.append(one_c16)
        results[C16] = one_c16.requests_per_second
        results[C16_CPU] = one_c16.cpu_ms
        if case.full:
            results["1 row c16 p99 ms"] = one_c16.p99_ms
            thousand = wrk(invocations, seconds, 4, bodies["1000"])
            runs.append(thousand)
            results["1,000 rows c4 rows/s"] = thousand.requests_per_second * 1000
        big = wrk_cpu(pids, invocations, seconds, 4, bodies["100000"])
        runs.append(big)
        results[BIG] = big.requests_per_second * BIG_ROWS
        results[BIG_CPU] = big.cpu_ms
        results[PSS] = pss_mb(pids)
        if case.full:
            script = str(bodies["6mb"].parent / "post.lua")
            command = ["wrk", "-t2", "-c4", f"-d{seconds + 2}s", "--timeout", "30s"]
            load = subprocess.Popen(
                [*command, "-s", script, invocations],
                env={**os.environ, "BENCH_BODY": str(bodies["6mb"])},
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
            ping = wrk(f"{url}/ping", seconds, 1)
            load.wait()
            runs.append(ping)
            results["/ping p99 ms, 6 MB load"] = ping.p99_ms
        results[ERRORS] = sum(run.errors for run in runs)
    return results


def nginx_alone(base: Path, seconds: int) -> float:
    port = free_port()
    runtime = Path(tempfile.mkdtemp(prefix="nginx-", dir=base))
    (runtime / "nginx.conf").write_text(NGINX_ALONE.format(dir=runtime, port=port))
    command = ["nginx", "-e", "stderr", "-c", str(runtime / "nginx.conf")]
    with running(command, dict(os.environ), runtime):
        wait_for(lambda: answers_ping(port), 10, "nginx")
        return wrk(f"http://127.0.0.1:{port}/", seconds, 16).requests_per_second


def demo_bodies(directory: Path) -> dict[str, Path]:
    """CSV bodies of iris-like rows: 1, 1,000 and 100,000 rows (~2 MB), and ~6 MB."""
    import numpy as np

    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "post.lua").write_text(POST_LUA)
    files = {}
    for name, rows in (("1", 1), ("1000", 1000), ("100000", BIG_ROWS), ("6mb", 310_000)):
        values = rng.uniform(0.1, 7.9, size=(rows, 4))
        text = "\n".join(",".join(f"{v:.2f}" for v in row) for row in values) + "\n"
        files[name] = directory / f"{name}.csv"
        files[name].write_text(text)
    assert files["6mb"].stat().st_size <= settings.MIN_PAYLOAD_MB * settings.MIB
    return files


def payload_bodies(payload: Path, directory: Path) -> dict[str, Path]:
    """The payload's first row, and its rows repeated to 100,000 rows, as they are written."""
    rows = [line for line in payload.read_text().splitlines() if line.strip()]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "post.lua").write_text(POST_LUA)
    files = {"1": directory / "1.csv", "100000": directory / "100000.csv"}
    files["1"].write_text(rows[0] + "\n")
    files["100000"].write_text("\n".join(rows[i % len(rows)] for i in range(BIG_ROWS)) + "\n")
    return files


def save_demo_model(program: Path, tests: Path, model_dir: Path) -> None:
    """The demo tree, saved by that checkout's own tests/iris_model.py (its model format)."""
    env = {**os.environ, "PYTHONPATH": str(program)}
    env.pop("BYOC_PREDICTOR", None)
    command = [sys.executable, str(tests / "iris_model.py"), str(model_dir)]
    subprocess.run(command, env=env, check=True, cwd=tests)


def train_example(name: str, base: Path) -> bool:
    """Train examples/<name> with `train` on a copy of its test_dir; False (said) if it fails."""
    shutil.copytree(EXAMPLES / name / "test_dir", base)
    env = model_env(base, EXAMPLES / name / "predictor.py")
    done = subprocess.run(
        [sys.executable, str(PROGRAM / "train")], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        failure = base / "output" / "failure"
        reason = failure.read_text().strip() if failure.exists() else done.stdout[-2000:]
        print(f"skipping {name}: train exited {done.returncode}: {reason}", file=sys.stderr)
        return False
    return True


def prepare(
    names: list[str], work: Path, workers: int, old: Path | None
) -> tuple[list[Case], list[str]]:
    """Every model's files, bodies and servers; and what was skipped, and why."""
    cases, skipped = [], []
    for name in names:
        base = work / name
        if name == DEMO:
            save_demo_model(PROGRAM, ROOT / "tests", base / "model")
            case = Case(name, None, demo_bodies(work / "bodies" / name), full=True)
        else:
            if not (EXAMPLES / name / "predictor.py").is_file():
                sys.exit(f"no example {name!r} in {EXAMPLES}")
            if not train_example(name, base):
                skipped.append(name)
                continue
            bodies = payload_bodies(EXAMPLES / name / "payload.csv", work / "bodies" / name)
            case = Case(name, EXAMPLES / name / "predictor.py", bodies, full=False)
        case.servers = [
            Server("serve", _bind(serve_server, PROGRAM, base, case.predictor, workers)),
            Server("classic", _bind(classic_server, base, case.predictor, workers)),
        ]
        if name == DEMO and old is not None:
            old_program = old / "container" / "decision_trees"
            old_base = work / "demo-old"
            save_demo_model(old_program, old / "tests", old_base / "model")
            case.servers.append(
                Server("serve (old)", _bind(serve_server, old_program, old_base, None, workers))
            )
        cases.append(case)
    return cases, skipped


def _bind(function: Callable, *arguments: object) -> Callable[[int], AbstractContextManager]:
    return lambda port: function(*arguments, port)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated: {DEMO} and/or names of examples/ (default: %(default)s)",
    )
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each server, in turns")
    parser.add_argument(
        "--old", type=Path, help="a checkout of another commit: serve the demo with its code too"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every server (and train), e.g. OMP_NUM_THREADS=1",
    )
    arguments = parser.parse_args()
    names = [n.strip() for n in arguments.models.split(",") if n.strip()]
    for setting in arguments.env:
        name, _, value = setting.partition("=")
        os.environ[name] = value
    started = time.monotonic()
    loads = [load_average()]

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as temporary:
        work = Path(temporary)
        work.chmod(0o755)
        cases, skipped = prepare(names, work, arguments.workers, arguments.old)
        floor = nginx_alone(work, arguments.seconds)
        rounds: dict[tuple[str, str], list[dict[str, float]]] = {}
        for number in range(arguments.repeat):
            for case in cases:
                turn = number % len(case.servers)
                for server in case.servers[turn:] + case.servers[:turn]:
                    print(
                        f"round {number + 1}/{arguments.repeat}: {case.name}, {server.name}",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = measure(server, arguments.seconds, case)
                    rounds.setdefault((case.name, server.name), []).append(result)
            loads.append(load_average())

    print(
        f"\n{arguments.workers} workers, {os.cpu_count()} CPUs, wrk {arguments.seconds} s per run, "
        f"medians of {arguments.repeat} rounds (± half the range of the rounds, % of the median); "
        f"{(time.monotonic() - started) / 60:.1f} min; load average before and after each round: "
        f"{', '.join(loads)}"
    )
    print(f"nginx alone (return 200), c16: {floor:,.0f} req/s")
    if arguments.env:
        print(f"environment of the servers: {' '.join(arguments.env)}")
    for name in skipped:
        print(f"\n{name}: skipped, `train` failed on it (see above)")
    for case in cases:
        print(f"\n### {case.name}\n")
        print_table(case, rounds)


def print_table(case: Case, rounds: dict[tuple[str, str], list[dict[str, float]]]) -> None:
    names = [server.name for server in case.servers]
    results = {name: rounds[(case.name, name)] for name in names}
    ratios = [("serve", "classic", "serve / classic")]
    if "serve (old)" in names:
        ratios.append(("serve", "serve (old)", "new / old"))
    header = ["measure", *names, *(title for _, _, title in ratios)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|")
    for key in results["serve"][0]:
        cells = [key]
        for name in names:
            cells.append(spread(key, [r[key] for r in results[name]]))
        for mine, theirs, _ in ratios:
            cells.append(ratio(key, results[mine], results[theirs]))
        print("| " + " | ".join(cells) + " |")
    if case.name == DEMO:
        serve, classic = results["serve"], results["classic"]
        print("\n| target | measured | goal |\n|---|---:|---:|")
        for key, goal in GOALS.items():
            if key == COLD:
                measured = f"{statistics.median(r[key] for r in serve):.2f} s"
            else:
                measured = ratio(key, serve, classic)
            print(f"| {key} | {measured} | {goal} |")


def spread(key: str, values: list[float]) -> str:
    median = statistics.median(values)
    if key == ERRORS:
        return f"{sum(values):,.0f}"
    digits = 2 if median < 100 else 0
    text = f"{median:,.{digits}f}"
    if len(values) > 1 and median:
        text += f" ±{(max(values) - min(values)) / 2 / median:.0%}"
    return text


def ratio(key: str, mine: list[dict[str, float]], theirs: list[dict[str, float]]) -> str:
    """The ratio of the medians, and the lowest and highest ratio of a round to its round."""
    if key == ERRORS:
        return ""
    a = statistics.median(r[key] for r in mine)
    b = statistics.median(r[key] for r in theirs)
    if not b:
        return ""
    each = sorted(m[key] / t[key] for m, t in zip(mine, theirs, strict=True) if t[key])
    text = f"{a / b:.2f}x"
    if len(each) > 1:
        text += f" ({each[0]:.2f}-{each[-1]:.2f})"
    return text


if __name__ == "__main__":
    main()
