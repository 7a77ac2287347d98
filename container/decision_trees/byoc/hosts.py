"""The hosts of the job, from resourceconfig.json (resourceConfig.json in older samples).

Identity comes only from this file: the container's hostname is not the SageMaker host name.
"""

from __future__ import annotations

from dataclasses import dataclass

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
