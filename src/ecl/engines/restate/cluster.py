"""A Restate cluster of several ``restate-server`` processes on loopback (tests, benchmarks).

Every node runs every role (ingress, admin, worker, log server, metadata server); metadata
and the log are replicated (Restate's ``replicated`` metadata client and Bifrost provider,
as its cluster documentation describes); the first node provisions the cluster. Each node
has its own config file and data folder under ``root`` and its own free loopback ports, so
any node's ingress serves every workflow and any node's admin API registers endpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from ecl.core.errors import EngineError
from ecl.engines.restate.server import RestateProcess, find_server_binary, free_port

__all__ = ["ClusterNode", "RestateCluster"]

ROLES = ("http-ingress", "admin", "worker", "log-server", "metadata-server")


@dataclass
class ClusterNode(RestateProcess):
    """One node: its ports, folder and process."""

    index: int
    root: Path
    host: str = "127.0.0.1"
    node_port: int = field(default_factory=free_port)
    ingress_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        """The node's name (``n1``, ``n2``, ...)."""
        return f"n{self.index}"

    @property
    def folder(self) -> Path:
        """The node's config file, data and log live here."""
        return self.root / self.name

    @property
    def config_path(self) -> Path:
        """The node's config file."""
        return self.folder / "restate.toml"

    @property
    def log_path(self) -> Path:
        """The node's output."""
        return self.folder / "restate.log"

    @property
    def address(self) -> str:
        """Node-to-node address."""
        return f"http://{self.host}:{self.node_port}"

    def config(self, cluster_name: str, peers: list[str], *, provision: bool, replication: int, partitions: int) -> str:
        """The node's TOML config (top-level keys first, then its tables)."""

        def q(value: str) -> str:
            return json.dumps(value)  # a TOML basic string is a JSON string

        lines = [
            f"node-name = {q(self.name)}",
            f"force-node-id = {self.index}",
            f"cluster-name = {q(cluster_name)}",
            f"base-dir = {q(str(self.folder / 'data'))}",
            f"roles = [{', '.join(q(r) for r in ROLES)}]",
            f"auto-provision = {'true' if provision else 'false'}",
            f"default-replication = {replication}",
            f"default-num-partitions = {partitions}",
            'listen-mode = "tcp"',
            f"bind-address = {q(f'{self.host}:{self.node_port}')}",
            f"advertised-address = {q(self.address)}",
            "",
            "[metadata-client]",
            'type = "replicated"',
            f"addresses = [{', '.join(q(p) for p in peers)}]",
            "",
            "[bifrost]",
            'default-provider = "replicated"',
            "",
            "[ingress]",
            f"bind-address = {q(f'{self.host}:{self.ingress_port}')}",
            f"advertised-address = {q(self.ingress_url)}",
            "",
            "[admin]",
            f"bind-address = {q(f'{self.host}:{self.admin_port}')}",
            f"advertised-address = {q(self.admin_url)}",
            "",
        ]
        return "\n".join(lines)


@dataclass
class RestateCluster:
    """Starts, waits for and stops ``size`` nodes forming one cluster.

    ``kill(i)`` is a crash (SIGKILL) of node ``i``; ``start_node(i)`` brings it back on the
    same ports and data. Node 0 provisions the cluster.
    """

    root: Path
    size: int = 3
    binary: Path | None = None
    replication: int = 2
    partitions: int = 4
    """Partitions provisioned (4 is plenty on a small machine; Restate's default is 24)."""
    cluster_name: str = "ecl"
    nodes: list[ClusterNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be at least 1, got {self.size}")
        if not self.nodes:
            self.nodes = [ClusterNode(i + 1, self.root) for i in range(self.size)]

    @property
    def ingress_urls(self) -> list[str]:
        """Every node's ingress."""
        return [n.ingress_url for n in self.nodes]

    def _write_config(self, node: ClusterNode) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        peers = [n.address for n in self.nodes]
        text = node.config(
            self.cluster_name,
            peers,
            provision=node is self.nodes[0],
            replication=min(self.replication, self.size),
            partitions=self.partitions,
        )
        node.config_path.write_text(text, encoding="utf-8")

    def start_node(self, index: int) -> None:
        """Start node ``index`` (0-based) unless it runs; does not wait."""
        node = self.nodes[index]
        if node.running:
            return
        self._write_config(node)
        binary = self.binary or find_server_binary()
        env = dict(os.environ, DO_NOT_TRACK="true")
        command = [str(binary), "--no-logo", "--log-disable-ansi-codes", "true", "-c", str(node.config_path)]
        with node.log_path.open("ab") as log:
            node.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 120.0) -> RestateCluster:
        """Start every node and wait until the cluster serves (see :meth:`wait_ready`)."""
        try:
            for index in range(self.size):
                self.start_node(index)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every running node is healthy and can reach every partition.

        Raises :class:`~ecl.core.EngineError` when a node exits or the deadline passes.
        """
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            for node in self.nodes:
                node.check_not_exited(f"restate-server {node.name}")
            if all(n.healthy() for n in self.nodes if n.running) and self._partitions_served():
                return
            if time.monotonic() > deadline:
                raise EngineError(
                    f"the Restate cluster did not become ready in {timeout:.0f}s; see {self.root}/n*/restate.log",
                    engine="restate",
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def _partitions_served(self) -> bool:
        """Whether every running node's admin API can query every partition (a query over
        ``sys_invocation_status`` fails until each partition has a processor)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                response = httpx.post(
                    f"{node.admin_url}/query",
                    json={"query": "SELECT count(*) AS n FROM sys_invocation_status"},
                    headers={"accept": "application/json"},
                    timeout=5,
                )
            except httpx.HTTPError:
                return False
            if response.status_code != 200:
                return False
        return True

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``, as a crash would."""
        self.nodes[index].kill(30)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node (SIGTERM to all, then SIGKILL to those left after ``timeout``)."""
        live = [n.proc for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> RestateCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
