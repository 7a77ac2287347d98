"""hyperparameters.json: decode the values however the client encoded them, then validate them.

SageMaker hands every value over as a string whose encoding depends on the client that made the
job: JSON (`"5"`, `"\\"gini\\""`), Python's `str()` (`"gini"`, `"None"`, `"True"`,
`"{'setosa': 2}"`) or a raw JSON value. Each value is decoded as JSON when it parses, as a Python
literal when it is a container that JSON cannot read, and kept as the raw string otherwise. The
estimator itself then says what is valid: its `get_params()` names the hyperparameters, and
scikit-learn's own parameter validation checks their values, so no table here repeats them.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from byoc.config import read_json_object
from byoc.errors import InputError

PLATFORM_PREFIX = "sagemaker_"
"""SDK clients add sagemaker_program, sagemaker_region, ...: not the algorithm's hyperparameters."""

PLATFORM_KEYS = frozenset({"_tuning_objective_metric"})
"""Added by hyperparameter tuning jobs."""

DATA_HYPERPARAMETERS = {"label_column": "the label's column in Parquet files (default: the first)"}
"""Hyperparameters of the data rather than the estimator, read by the plumbing."""

PYTHON_WORDS = {"None": None, "True": True, "False": False}
"""How Python's str() writes the values JSON spells null, true and false."""

PYTHON_CONTAINERS = ("{", "[", "(")
"""How a dict, list or tuple written by Python's str() starts (SDK v2's generic Estimator)."""

_SKLEARN_MESSAGE = re.compile(r"The '(\w+)' parameter of (\w+) must be")
_SKLEARN_GOT = re.compile(r"\s*Got .* instead\.?$", re.DOTALL)
SHOWN_CHARACTERS = 100
"""A received value longer than this is cut in messages, so that what is accepted stays in view."""


def decode(value: Any) -> Any:
    """A value from hyperparameters.json; a string is decoded as JSON or a Python literal."""
    if not isinstance(value, str):
        return value
    if value in PYTHON_WORDS:
        return PYTHON_WORDS[value]
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        pass
    if value.lstrip().startswith(PYTHON_CONTAINERS):
        # literal_eval builds literals only: it never calls or imports anything.
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return value


def read(path: Path) -> dict[str, Any]:
    """The user's hyperparameters as received (not decoded), without the platform's own keys."""
    if not path.exists():
        return {}
    received = read_json_object(path, "a JSON object of names to values")
    return {
        key: value
        for key, value in received.items()
        if not key.startswith(PLATFORM_PREFIX) and key not in PLATFORM_KEYS
    }


def split(received: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data hyperparameters (decoded) and the estimator's (as received)."""
    data = {name: decode(received[name]) for name in DATA_HYPERPARAMETERS if name in received}
    label = data.get("label_column")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, str | int | float) or label == "":
            raise InputError(
                f"Hyperparameter label_column={json.dumps(received['label_column'])} is not "
                "valid: expected a column name."
            )
        data["label_column"] = str(label)
    return data, {k: v for k, v in received.items() if k not in DATA_HYPERPARAMETERS}


def configure(estimator: Any, received: Mapping[str, Any]) -> Any:
    """`estimator` with the received hyperparameters set and validated by scikit-learn itself.

    InputError names an unknown hyperparameter (with the closest name) or a value the estimator
    rejects (with what it accepts).
    """
    accepted = estimator.get_params(deep=True)
    names = [*accepted, *DATA_HYPERPARAMETERS]
    for name in received:
        if name not in accepted:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise InputError(
                f'Unknown hyperparameter "{name}".{hint} Accepted: {", ".join(sorted(names))}.'
            )
    decoded = {name: decode(value) for name, value in received.items()}
    for name in decoded:
        current = accepted[name]
        if hasattr(current, "get_params") and not isinstance(current, type):
            raise InputError(
                f"Hyperparameter {name}={_shown(received[name])} is not valid: {name} is a "
                f"{type(current).__name__}, which a hyperparameter cannot replace (set its own "
                f"parameters instead, such as {name}__<parameter>)."
            )
    try:
        estimator.set_params(**decoded)
    except (TypeError, ValueError) as e:
        raise InputError(f"Hyperparameters {json.dumps(dict(received))} are not valid: {e}") from e
    for part in _estimators(estimator):
        try:
            validate_params(part)
        except (TypeError, ValueError) as e:
            raise InputError(_explain(e, received, estimator, part)) from e
    return estimator


def validate_params(estimator: Any) -> None:
    """scikit-learn's check of an estimator's own parameters, before any data is read.

    `_validate_params` is private; fit runs the same check, so without it the error comes
    at fit instead (tests/unit/test_hyperparameters.py fails the build when it goes away).
    Other libraries' estimators may inherit it without the constraints it reads.
    """
    check = getattr(estimator, "_validate_params", None)
    if callable(check) and isinstance(getattr(estimator, "_parameter_constraints", None), dict):
        check()


def _estimators(estimator: Any) -> list[Any]:
    """The estimator and every estimator among its parameters (a Pipeline's steps, ...)."""
    found = [estimator]
    for value in estimator.get_params(deep=True).values():
        if hasattr(value, "get_params") and not isinstance(value, type):
            found.append(value)
    return found


def _shown(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    if len(shown) <= SHOWN_CHARACTERS:
        return shown
    return f"{shown[:SHOWN_CHARACTERS]}... ({len(shown)} characters)"


def _explain(error: Exception, received: Mapping[str, Any], estimator: Any, part: Any) -> str:
    """scikit-learn's message, led by the hyperparameter as the job received it.

    `part` is the estimator (maybe a Pipeline's step) whose validation failed.
    """
    message = str(error).strip()
    match = _SKLEARN_MESSAGE.search(message)
    if match:
        parameter = match[1]
        nested = estimator.get_params(deep=True)
        keys = [
            k
            for k in received
            if k.rpartition("__")[2] == parameter
            and (nested.get(k.rpartition("__")[0]) if "__" in k else estimator) is part
        ]
        if keys:
            # scikit-learn's "Got ... instead." repeats the value, which is shown first here.
            accepted = _SKLEARN_GOT.sub("", message)
            return f"Hyperparameter {keys[0]}={_shown(received[keys[0]])} is not valid: {accepted}"
        return f"Hyperparameter {parameter} of {type(estimator).__name__} is not valid: {message}"
    return f"The hyperparameters are not valid for {type(estimator).__name__}: {message}"
