"""Build stage only: write bytecode for the modules `train` and `serve` import, and for no others.

Usage: python -B compile_bytecode.py PROGRAM_DIR. Bytecode keeps a cold start fast, but for all of
the virtual environment it weighs 44 MB, a third of it modules that neither program ever loads.
Importing the programs' entry modules fills sys.modules with what they pull in; only those are
compiled. A module missed here still works: it is compiled in memory each time it is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import py_compile
import sys
from pathlib import Path

from gevent import monkey

ENTRY_MODULES = (
    "byoc.training",  # train's worker
    "byoc.defaults",  # the default hooks, which import the rest when they run:
    "sklearn",
    "sklearn.metrics",
    "skops.io",
    "gunicorn.app.wsgiapp",  # `python -m gunicorn`
    "gunicorn.workers.ggevent",  # worker_class = "gevent"
    "byoc.app",  # what wsgi.py imports; importing wsgi itself would load a model
)


def main(program_dir: str) -> int:
    """Import the entry modules, then compile every module of the environment they loaded."""
    sys.path.insert(0, program_dir)
    for name in ENTRY_MODULES:
        importlib.import_module(name)
    # As gunicorn's gevent worker does before it serves: this imports gevent's replacement modules.
    monkey.patch_all()
    environment = Path(sys.prefix).resolve()
    compiled = 0
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if not source or not source.endswith(".py"):
            continue
        if not Path(source).resolve().is_relative_to(environment):
            continue
        py_compile.compile(source, cfile=importlib.util.cache_from_source(source), doraise=True)
        compiled += 1
    print(f"compiled {compiled} modules imported by train and serve")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
