"""How fast `train` reads its data, and with how much memory, next to the classic way.

Generates a 1,000,000-row x 20-feature CSV split into several files in a temporary /opt/ml tree,
then runs, each in a process of its own:
- `train` itself: reading, fitting a tree of depth 8, metrics, saving the model;
- train's reader alone (dataset.read, without scikit-learn's ~100 MiB of imports);
- the classic way: pandas.read_csv per file, then pd.concat (reading only).
The first two run without pandas, as in the image.
Prints read time (as logged), peak RSS, wall time and CPU time (from wait4: the process and its
children; CPU time, imports included, shows the work done even when other processes share the
CPUs). The reader and the classic way run --repeat times, taking turns, and each figure is the
median: on a small virtual machine one run can differ from the next by a quarter.
Usage: python benchmarks/train_read.py [--rows N] [--files N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "container" / "decision_trees" / "train"
FEATURES = 20

READER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(TRAIN.parent)!r})
from byoc import dataset
from byoc.channels import Channel
dataset.read(Channel("training", Path(sys.argv[1])))
"""

CLASSIC = """
import sys, time
import pandas as pd
started = time.monotonic()
frames = [pd.read_csv(path, header=None) for path in sys.argv[1:]]
data = pd.concat(frames, ignore_index=True)
print(f"read {len(data)} rows in {time.monotonic() - started:.3f} s")
"""


def generate(channel: Path, rows: int, files: int) -> None:
    """CSV files of a label (one of 4 classes, from the first features) and 20 features."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    channel.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for number, part in enumerate(np.array_split(np.arange(rows), files)):
        values = np.round(rng.random((len(part), FEATURES)), 4)
        classes = (values[:, 0] + values[:, 1] > 1).astype(int) + 2 * (values[:, 2] > 0.5)
        labels = np.array(["a", "b", "c", "d"])[classes]
        columns = {"label": labels, **{f"f{i}": values[:, i] for i in range(FEATURES)}}
        path = channel / f"part-{number:04d}.csv"
        pcsv.write_csv(
            pa.table(columns), path, write_options=pcsv.WriteOptions(include_header=False)
        )


def measure(command: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Output, wall time (s), CPU time (s) and peak RSS (MiB) of a command and its children."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{output}")
    return output, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def medians(runs: list[tuple[float, ...]]) -> list[float]:
    """The median of each figure over the runs."""
    return [statistics.median(figure) for figure in zip(*runs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_into:
        generate(args.generate_into, args.rows, args.files)
        return

    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        base = Path(tmp) / "opt_ml"
        channel = base / "input" / "data" / "training"
        # In a process of its own: a child's peak RSS counts the parent's memory when forked.
        generator = [sys.executable, __file__, f"--rows={args.rows}", f"--files={args.files}"]
        subprocess.run([*generator, f"--generate-into={channel}"], check=True)
        files = sorted(channel.iterdir())
        (base / "input" / "config").mkdir(parents=True)
        (base / "input" / "config" / "hyperparameters.json").write_text(
            json.dumps({"max_depth": "8"})
        )
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"{args.rows:,} rows x {FEATURES} features in {len(files)} CSV files, {size:.0f} MiB")

        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
        env.pop("BYOC_PREDICTOR", None)  # the demo's model module: a decision tree
        # pandas is hidden from train, as in the image where it is not installed (this
        # environment has it for the classic way): scikit-learn and pyarrow would import it.
        no_pandas = Path(tmp) / "no_pandas"
        (no_pandas / "pandas").mkdir(parents=True)
        (no_pandas / "pandas" / "__init__.py").write_text("raise ImportError('not installed')\n")
        image_env = {**env, "PYTHONPATH": str(no_pandas)}
        output, train_wall, train_cpu, train_rss = measure([sys.executable, str(TRAIN)], image_env)
        train_read = float(re.search(r"training: read .* in ([0-9.]+) s", output)[1])
        train_fit = float(re.search(r"fitted in ([0-9.]+) s", output)[1])
        reader_runs, classic_runs = [], []
        for _ in range(args.repeat):
            output, *figures = measure(
                [sys.executable, "-c", READER, str(files[0].parent)], image_env
            )
            read = float(re.search(r"training: read .* in ([0-9.]+) s", output)[1])
            reader_runs.append((read, *figures))
            output, *figures = measure([sys.executable, "-c", CLASSIC, *map(str, files)], env)
            classic_runs.append((float(re.search(r"in ([0-9.]+) s", output)[1]), *figures))
        reader_read, reader_wall, reader_cpu, reader_rss = medians(reader_runs)
        classic_read, classic_wall, classic_cpu, classic_rss = medians(classic_runs)

    rows = [
        ("train (read, fit, save)", train_read, train_rss, train_wall, train_cpu),
        ("train's reader alone", reader_read, reader_rss, reader_wall, reader_cpu),
        ("classic (pandas + concat)", classic_read, classic_rss, classic_wall, classic_cpu),
    ]
    print(f"\n{'':27}{'read time':>11}{'peak RSS':>12}{'wall time':>11}{'CPU time':>10}")
    for name, read, rss, wall, cpu in rows:
        print(f"{name:27}{read:>9.2f} s{rss:>8.0f} MiB{wall:>9.2f} s{cpu:>8.2f} s")
    for name, read, rss, _, cpu in rows[:2]:
        ratio = f"{name.split(' (')[0].replace(' alone', '')} / classic"
        print(
            f"{ratio:27}{read / classic_read:>9.2f} x{rss / classic_rss:>10.2f} x"
            f"{'':11}{cpu / classic_cpu:>8.2f} x"
        )
    print(
        f"(train's fit: {train_fit:.2f} s; reader and classic: medians of {args.repeat} runs; "
        "target: read time and peak RSS <= 0.5 x classic)"
    )


if __name__ == "__main__":
    main()
