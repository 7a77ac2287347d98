"""Execute the walkthrough from a clean state, as a reader would; `make notebook` saves the result.

The test of the notebook runs it through the same function, so what is committed is what is tested.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).with_name("scikit_bring_your_own.ipynb")
CELL_TIMEOUT = 300
"""Seconds a local cell may run."""

SAGEMAKER_CELL_TIMEOUT = 3600
"""Seconds a cell may run when Part 3 runs: jobs and endpoints take minutes each."""


def run(
    path: Path = NOTEBOOK,
    environ: Mapping[str, str] = os.environ,
    timeout: int = CELL_TIMEOUT,
) -> nbformat.NotebookNode:
    """The notebook at `path` with its outputs cleared, then executed in its own folder."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    # Only ipykernel's own spec, so the kernel is this interpreter, not a "python3" kernel that a
    # user's Jupyter set-up may point at another Python.
    kernel = KernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )
    NotebookClient(
        notebook,
        km=kernel,
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute(env=dict(environ), cleanup_kc=True)  # shut the kernel down, though not created here
    return notebook


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOK
    on_sagemaker = os.environ.get("RUN_ON_SAGEMAKER") == "1"
    nbformat.write(
        run(target, timeout=SAGEMAKER_CELL_TIMEOUT if on_sagemaker else CELL_TIMEOUT), target
    )
    print(f"executed and saved {target}")
