"""Requests in flight while a server stops: the graceful-shutdown check of every test tier."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Stopping:
    """Each answer's status and arrival time, and when stopping began and ended."""

    answers: list[tuple[int, float]]
    began: float
    ended: float


def stop_with_requests_in_flight(
    port: int, body: bytes, stop: Callable[[], object], requests: int = 8
) -> Stopping:
    """POST `body` as CSV on `requests` connections at once, call `stop` when all are sent,
    and wait for every answer."""
    sent = threading.Barrier(requests + 1)
    answers: list[tuple[int, float]] = []

    def ask() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            sent.wait()
            response = connection.getresponse()
            response.read()
            answers.append((response.status, time.monotonic()))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(requests)]
    for thread in threads:
        thread.start()
    sent.wait()
    began = time.monotonic()
    try:
        stop()
        ended = time.monotonic()
    finally:
        for thread in threads:
            thread.join(60)
    return Stopping(answers, began, ended)
