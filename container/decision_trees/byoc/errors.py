"""The one error for input a user must fix: a 400 in serving, exit 2 in training."""

from __future__ import annotations


class InputError(ValueError):
    """The input (a request, the job's configuration or data) is wrong; the message says how.

    Raise it from any hook: serving answers 400 with the message, training fails with exit 2.
    """
