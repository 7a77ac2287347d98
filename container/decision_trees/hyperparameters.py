"""hyperparameters.json: decode the values however the client encoded them, then validate them.

SageMaker hands every value over as a string whose encoding depends on the client that made the
job: JSON (`"5"`, `"\\"gini\\""`), Python's `str()` (`"gini"`, `"None"`) or a raw JSON value. Each
value is decoded as JSON when it parses and kept as the raw string otherwise; then the spec of
each hyperparameter (a default and the kinds of value it accepts) converts it to its real type.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from failure import InputError, read_json_object

PLATFORM_PREFIX = "sagemaker_"
"""SDK clients add sagemaker_program, sagemaker_region, ...: not the algorithm's hyperparameters."""

PLATFORM_KEYS = frozenset({"_tuning_objective_metric"})
"""Added by hyperparameter tuning jobs."""


class Kind(Protocol):
    """One kind of value a hyperparameter accepts."""

    def convert(self, value: Any) -> Any:
        """The value in its real type; ValueError when it is not of this kind."""
        ...

    def describe(self) -> str:
        """What this kind accepts, for error messages and the README."""
        ...


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _check_range(
    value: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> None:
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError


@dataclass(frozen=True)
class Integer:
    """An integer (`5`, not `5.0`: scikit-learn reads a float as a fraction) in a range."""

    low: int | None = None
    high: int | None = None

    def convert(self, value: Any) -> int:
        if not _is_number(value) or not isinstance(value, int):
            raise ValueError
        _check_range(value, self.low, self.high, False, False)
        return value

    def describe(self) -> str:
        return f"an integer {_range(self.low, self.high, False, False)}".rstrip()


@dataclass(frozen=True)
class Number:
    """A number in a range; with `fraction`, only a decimal number (`0.5`, `1.0`, not `1`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    fraction: bool = False

    def convert(self, value: Any) -> float:
        if not _is_number(value) or (self.fraction and not isinstance(value, float)):
            raise ValueError
        _check_range(value, self.low, self.high, self.low_open, self.high_open)
        return float(value)

    def describe(self) -> str:
        what = "a decimal fraction" if self.fraction else "a number"
        return f"{what} {_range(self.low, self.high, self.low_open, self.high_open)}".rstrip()


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""

    options: tuple[str, ...]

    def convert(self, value: Any) -> str:
        if value not in self.options:
            raise ValueError
        return value

    def describe(self) -> str:
        return " or ".join(f'"{option}"' for option in self.options)


@dataclass(frozen=True)
class Null:
    """None: JSON `null`, or `None` as Python's str() writes it."""

    meaning: str = ""

    def convert(self, value: Any) -> None:
        if value is not None and value != "None":
            raise ValueError

    def describe(self) -> str:
        return f"null ({self.meaning})" if self.meaning else "null"


@dataclass(frozen=True)
class Text:
    """A non-empty string (a number such as a column named `2024` counts as its text)."""

    description: str = "a string"

    def convert(self, value: Any) -> str:
        if _is_number(value):
            return str(value)
        if not isinstance(value, str) or not value:
            raise ValueError
        return value

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Weights:
    """A JSON object of names to weights > 0, such as {"setosa": 1, "virginica": 2.5}."""

    def convert(self, value: Any) -> dict[str, float]:
        if not isinstance(value, dict) or not value:
            raise ValueError
        weight = Number(low=0.0, low_open=True)
        return {str(key): weight.convert(w) for key, w in value.items()}

    def describe(self) -> str:
        return 'a JSON object of class to weight > 0 such as {"setosa": 2.5}'


@dataclass(frozen=True)
class Hyperparameter:
    """A default and the kinds of value accepted, tried in order (the first that fits wins)."""

    default: Any
    kinds: tuple[Kind, ...]

    def accepts(self) -> str:
        """What the hyperparameter accepts, in words."""
        return ", ".join(kind.describe() for kind in self.kinds)

    def convert(self, name: str, received: Any) -> Any:
        """The typed value of `received` (as in hyperparameters.json); InputError if none fits."""
        value = decode(received)
        for kind in self.kinds:
            try:
                return kind.convert(value)
            except ValueError:
                continue
        shown = json.dumps(received, ensure_ascii=False)
        raise InputError(
            f"Hyperparameter {name}={shown} is not valid: expected {self.accepts()} "
            f"(default: {json.dumps(self.default)})."
        )


def decode(value: Any) -> Any:
    """A value from hyperparameters.json: JSON-decoded when it is a string that parses as JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
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


def resolve(received: Mapping[str, Any], spec: Mapping[str, Hyperparameter]) -> dict[str, Any]:
    """Every hyperparameter of `spec` in its real type: the received value, else the default."""
    for name in received:
        if name not in spec:
            close = difflib.get_close_matches(name, spec, n=1)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise InputError(
                f'Unknown hyperparameter "{name}".{hint} Accepted: {", ".join(sorted(spec))}.'
            )
    return {
        name: parameter.convert(name, received[name]) if name in received else parameter.default
        for name, parameter in spec.items()
    }
