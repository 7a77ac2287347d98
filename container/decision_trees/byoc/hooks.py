"""The model module (predictor.py) and its hooks, each hook it leaves out taken from `defaults`.

`train` and `serve` find the module at $BYOC_PREDICTOR (a .py file; local runs and the examples
use it) or beside them in /opt/program. It is imported once, under the name `predictor`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from byoc import defaults, environment

PREDICTOR_ENV = environment.PREDICTOR_ENV
DEFAULT_MODULE = Path(__file__).resolve().parent.parent / "predictor.py"
MODULE_NAME = "predictor"

TRAINING = ("build_estimator", "fit", "evaluate", "metric_names", "describe", "save_model")
SERVING = ("model_fn", "input_fn", "predict_fn", "output_fn")


class HookError(Exception):
    """The model module cannot be imported, or lacks what it must define; names the cause."""


@dataclass(frozen=True)
class Hooks:
    """Every hook, the module's own or the default."""

    path: Path
    module: ModuleType
    build_estimator: Callable[[Mapping[str, Any]], Any]
    fit: Callable[[Any, Any, Any], Any]
    evaluate: Callable[[Any, Any, Any], dict[str, float]]
    metric_names: Callable[[Any], tuple[str, ...]]
    describe: Callable[[Any], str]
    save_model: Callable[[Any, Path], None]
    model_fn: Callable[[Path], Any]
    input_fn: Callable[[Any, Any], Any]
    predict_fn: Callable[[Any, Any, defaults.Request], Any]
    output_fn: Callable[[Any, Any, defaults.Request], list[Any]]

    @property
    def overridden(self) -> list[str]:
        """The hooks the module defines itself."""
        return [
            name for name in (*TRAINING, *SERVING) if callable(getattr(self.module, name, None))
        ]


def module_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The model module's file."""
    return Path(environ.get(PREDICTOR_ENV) or DEFAULT_MODULE).resolve()


@functools.cache
def load(path: Path | None = None) -> Hooks:
    """Import the model module (once) and resolve its hooks; HookError says what is wrong."""
    path = path or module_path()
    module = _import(path)
    trusted = list(getattr(module, "TRUSTED_TYPES", ()))

    def own(name: str, default: Callable[..., Any]) -> Callable[..., Any]:
        hook = getattr(module, name, None)
        return hook if callable(hook) else default

    def build(hyperparameters: Mapping[str, Any]) -> Any:
        template = getattr(module, "estimator", None)
        if not callable(template):
            raise HookError(
                f"{path} defines neither estimator() nor build_estimator(hyperparameters): "
                "train needs one of them to make the model"
            )
        return defaults.build_estimator(hyperparameters, template())

    return Hooks(
        path=path,
        module=module,
        build_estimator=own("build_estimator", build),
        fit=own("fit", defaults.fit),
        evaluate=own("evaluate", defaults.evaluate),
        metric_names=own("metric_names", defaults.metric_names),
        describe=own("describe", defaults.describe),
        save_model=own("save_model", functools.partial(defaults.save_model, trusted_types=trusted)),
        model_fn=own("model_fn", functools.partial(defaults.model_fn, trusted_types=trusted)),
        input_fn=own("input_fn", defaults.input_fn),
        predict_fn=own("predict_fn", defaults.predict_fn),
        output_fn=own("output_fn", defaults.output_fn),
    )


def _import(path: Path) -> ModuleType:
    if not path.is_file():
        raise HookError(f"no model module: {path} does not exist (set ${PREDICTOR_ENV})")
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise HookError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    # The module's own folder first, so that it can import its neighbours.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[MODULE_NAME]
        raise HookError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    return module
