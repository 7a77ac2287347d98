"""Batch transform benchmark: big requests spread over one server's workers, and a local batch
transform job's rows/s against its number of instances.

    python benchmarks/transform_bench.py [--seconds 8] [--instances 1,2,3,4] [--old PATH]

workers: `serve` (2 workers, the demo tree) gets 100,000-row CSV bodies from wrk at 1, 2 and 4
connections (MaxConcurrentTransforms sends that many at once); printed: rows/s, and the CPU
seconds each process of the server used during the run. --old PATH measures a checkout of another
commit the same way (`git worktree add PATH REV`).
instances: local_test/transform.py runs a job of 8 files of 100,000 rows each over 1 to 4
`serve` instances (2 workers each, as on a 2-CPU instance; here all on this one machine);
printed: wall time and rows/s. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_bench import (
    BIG_ROWS,
    PROGRAM,
    ROOT,
    answers_ping,
    demo_bodies,
    free_port,
    load_average,
    save_demo_model,
    serve_server,
    tree,
    wait_for,
    wrk,
)

TRANSFORM = ROOT / "local_test" / "transform.py"
FILES = 8


def cpu_by_process(pids: list[int]) -> dict[int, tuple[str, float]]:
    """Each process's name (gunicorn master or worker, nginx, serve) and CPU seconds so far."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = b" ".join(command).decode(errors="replace")
        if "nginx" in words:
            name = "nginx " + ("master" if "master" in words else "worker")
        elif "gunicorn" in words:
            name = "gunicorn"
        else:
            name = "serve"
        found[pid] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def workers(program: Path, tests: Path, label: str, work: Path, seconds: int) -> None:
    base = work / label
    save_demo_model(program, tests, base / "model")
    body = demo_bodies(work / "bodies")["100000"]
    port = free_port()
    with serve_server(program, base, None, 2, port) as processes:
        wait_for(lambda: answers_ping(port), 60, "serve")
        url = f"http://127.0.0.1:{port}/invocations"
        wrk(url, 2, 4, body)
        pids = tree(processes[0].pid)
        for connections in (1, 2, 4):
            before = cpu_by_process(pids)
            started = time.monotonic()
            run = wrk(url, seconds, connections, body)
            elapsed = time.monotonic() - started
            after = cpu_by_process(pids)
            used = {pid: (name, cpu - before[pid][1]) for pid, (name, cpu) in after.items()}
            gunicorn = sorted(
                (cpu for name, cpu in used.values() if name == "gunicorn"), reverse=True
            )
            nginx = sum(cpu for name, cpu in used.values() if name.startswith("nginx"))
            total = sum(cpu for _, cpu in used.values())
            print(
                f"| {label} | {connections} | {run.requests_per_second * BIG_ROWS:,.0f} | "
                f"{' / '.join(f'{cpu:.1f}' for cpu in gunicorn[:3])} | {nginx:.1f} | "
                f"{total / elapsed:.2f} | {run.errors} |",
                flush=True,
            )


def instances(counts: list[int], work: Path) -> None:
    base = work / "transform"
    save_demo_model(PROGRAM, ROOT / "tests", base / "model")
    body = demo_bodies(work / "bodies")["100000"].read_bytes()
    folder = work / "input"
    folder.mkdir()
    for index in range(FILES):
        (folder / f"part-{index}.csv").write_bytes(body)
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    for count in counts:
        output = work / f"output-{count}"
        command = [sys.executable, str(TRANSFORM), str(folder), str(output)]
        started = time.monotonic()
        subprocess.run([*command, "--instances", str(count)], env=env, check=True)
        elapsed = time.monotonic() - started
        print(
            f"| {count} | {elapsed:.2f} | {FILES * BIG_ROWS / elapsed:,.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--instances", default="1,2,3,4", help="instance counts to run the job on")
    parser.add_argument("--old", type=Path, help="a checkout of another commit, measured too")
    arguments = parser.parse_args()
    print(f"load average at the start: {load_average()}\n")
    with tempfile.TemporaryDirectory(prefix="transform-bench-") as temporary:
        work = Path(temporary)
        print("| server | connections | rows/s | CPU s per worker | CPU s nginx | CPUs used "
              "| errors |\n|---|---:|---:|---|---:|---:|---:|")  # fmt: skip
        if arguments.old is not None:
            old_program = arguments.old / "container" / "decision_trees"
            workers(old_program, arguments.old / "tests", "old", work, arguments.seconds)
        workers(PROGRAM, ROOT / "tests", "this", work, arguments.seconds)
        print("\n| instances | wall s | rows/s (input) |\n|---:|---:|---:|")
        instances([int(n) for n in arguments.instances.split(",")], work)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
