"""The hosts of the job, from resourceconfig.json (resourceConfig.json in older samples).

Identity comes only from this file: the container's hostname is not the SageMaker host name.
One host, the leader, trains; the others wait until it exits, watching a TCP port it holds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from byoc import environment
from byoc.config import read_json_object
from byoc.environment import Paths
from byoc.errors import InputError

SINGLE_HOST = "algo-1"
"""The host name assumed when there is no resource file (old local tests)."""


@dataclass(frozen=True)
class Cluster:
    """The hosts of a training job and which one this is."""

    current_host: str
    hosts: tuple[str, ...]

    @property
    def leader(self) -> str:
        """The host that trains. Every host computes the same answer without talking to the others.

        `hosts` is sorted as text (algo-10 before algo-2); numbers in names are never parsed.
        """
        return sorted(self.hosts)[0]

    @property
    def is_leader(self) -> bool:
        """Whether this host trains."""
        return self.current_host == self.leader


def read(paths: Paths) -> Cluster:
    """The cluster described by the resource file; a single host when there is none."""
    path = next((p for p in paths.resource_configs if p.exists()), None)
    if path is None:
        return Cluster(SINGLE_HOST, (SINGLE_HOST,))
    config = read_json_object(path)
    hosts = config.get("hosts") or []
    current = config.get("current_host") or (hosts[0] if len(hosts) == 1 else None)
    if current is None:
        raise InputError(f"{path} names no current_host among several hosts: {hosts}.")
    hosts = tuple(hosts) or (current,)
    if current not in hosts:
        raise InputError(f"{path}: current_host {current!r} is not one of the hosts {hosts}.")
    return Cluster(current, hosts)


LEADER_PORT = 7370
"""The TCP port the leader holds from its start until it exits, for the other hosts to watch."""

LEADER_TIMEOUT_S = 300.0
"""How long a host keeps trying to reach the leader, and the leader waits to be reached.

SageMaker starts every host's container at about the same time, but a host's name may take a
while to resolve: AWS's training toolkit waits minutes for it too.
"""

RETRY_INTERVAL_S = 0.5
"""Between attempts to reach a leader that does not answer yet."""

KEEPALIVE_S = 60
"""A leader whose instance vanishes sends no FIN: TCP keepalive ends the wait within minutes."""


def leader_port(environ: Mapping[str, str] = os.environ) -> int:
    """The port of LEADER_PORT, or of $BYOC_LEADER_PORT."""
    return int(environ.get(environment.LEADER_PORT_ENV) or LEADER_PORT)


def leader_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """LEADER_TIMEOUT_S, or $BYOC_LEADER_TIMEOUT_S."""
    return float(environ.get(environment.LEADER_TIMEOUT_ENV) or LEADER_TIMEOUT_S)


class LeaderPort:
    """The leader's listening port: open while the leader runs, closed when it exits.

    Every other host connects to it and waits for it to close, so that no host exits before
    the leader has finished (SageMaker's local mode stops every container when one exits).
    The connections are only held, never written to: the kernel closes them when the leader's
    process ends, however it ends.
    """

    def __init__(self, port: int, others: int) -> None:
        self._server = socket.create_server(("", port))
        self._server.settimeout(RETRY_INTERVAL_S)
        self._others = others
        self._connections: list[socket.socket] = []
        self._everyone = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="leader-port", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.getsockname()[1])

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(connection)
            if len(self._connections) >= self._others:
                self._everyone.set()

    def wait_for_others(self, timeout: float) -> int:
        """Wait until every other host has connected or `timeout` passed; how many did."""
        self._everyone.wait(max(timeout, 0.0))
        return len(self._connections)

    def close(self) -> None:
        """Close the port and every connection: the waiting hosts see that the leader is done."""
        self._closed.set()
        self._thread.join()
        self._server.close()
        for connection in self._connections:
            connection.close()


def wait_for_leader(leader: str, port: int, timeout: float) -> bool:
    """Connect to the leader's port and wait until it closes; False if never reached in time.

    Any error after connecting (a reset, keepalive giving up) means the same as a close: the
    leader is gone, and its own status decides the job.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = socket.create_connection((leader, port), timeout=RETRY_INTERVAL_S)
            break
        except OSError:  # not resolvable yet, refused (not listening yet), no answer
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(RETRY_INTERVAL_S, left))
    with connection:
        connection.settimeout(None)
        _keepalive(connection)
        try:
            while connection.recv(4096):
                pass
        except OSError:
            pass
    return True


def _keepalive(connection: socket.socket) -> None:
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_S), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
        if hasattr(socket, option):  # Linux's; macOS has other names
            connection.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
