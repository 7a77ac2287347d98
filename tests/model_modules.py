"""Model modules (predictor.py files) for tests, written by the `model_module` fixture.

Each defines TRUSTED_TYPES and estimator() only; every other hook is the default.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from byoc import hooks


def module(estimator: str, imports: str, trusted: tuple[str, ...]) -> str:
    """The source of a model module whose estimator() returns `estimator` (after `imports`)."""
    lines = [
        f"TRUSTED_TYPES = {list(trusted)!r}",
        "",
        "",
        "def estimator():",
        *(f"    {line}" for line in imports.splitlines()),
        f"    return {estimator}",
    ]
    return "\n".join(lines) + "\n"


TREE = ("sklearn.tree._tree.Tree",)

TREE_CLASSIFIER = module(
    "DecisionTreeClassifier(random_state=0)",
    "from sklearn.tree import DecisionTreeClassifier",
    TREE,
)
TREE_REGRESSOR = module(
    "DecisionTreeRegressor(random_state=0)", "from sklearn.tree import DecisionTreeRegressor", TREE
)
FOREST_CLASSIFIER = module(
    "RandomForestClassifier(n_estimators=5, random_state=0)",
    "from sklearn.ensemble import RandomForestClassifier",
    TREE,
)
FOREST_REGRESSOR = module(
    "RandomForestRegressor(n_estimators=5, random_state=0)",
    "from sklearn.ensemble import RandomForestRegressor",
    TREE,
)
BOOSTED_REGRESSOR = module(
    "HistGradientBoostingRegressor(max_iter=10, random_state=0)",
    "from sklearn.ensemble import HistGradientBoostingRegressor",
    ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
)
PIPELINE = module(
    'Pipeline([("scale", StandardScaler()), ("model", DecisionTreeClassifier(random_state=0))])',
    "from sklearn.pipeline import Pipeline\n"
    "from sklearn.preprocessing import StandardScaler\n"
    "from sklearn.tree import DecisionTreeClassifier",
    TREE,
)
LOGISTIC_REGRESSION = module(
    "LogisticRegression(max_iter=500)", "from sklearn.linear_model import LogisticRegression", ()
)


class ModuleFiles:
    """Writes model modules, each in a folder of its own, and puts back what loading changes.

    `hooks.load` imports a module as `predictor`, caches it and puts its folder on sys.path.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count()
        self._saved_module = sys.modules.get(hooks.MODULE_NAME)
        self._saved_path = list(sys.path)
        hooks.load.cache_clear()

    def __call__(self, source: str) -> Path:
        folder = self.folder / f"module_{next(self._counter)}"
        folder.mkdir(parents=True)
        path = folder / "predictor.py"
        path.write_text(textwrap.dedent(source))
        return path

    def restore(self) -> None:
        hooks.load.cache_clear()
        sys.path[:] = self._saved_path
        if self._saved_module is None:
            sys.modules.pop(hooks.MODULE_NAME, None)
        else:
            sys.modules[hooks.MODULE_NAME] = self._saved_module


ModuleFactory = Callable[[str], Path]


def files(folder: Path) -> Iterator[ModuleFiles]:
    """For a fixture: a ModuleFiles, restored after the test."""
    written = ModuleFiles(folder)
    try:
        yield written
    finally:
        written.restore()
