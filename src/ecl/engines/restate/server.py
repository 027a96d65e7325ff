"""A local Restate server process (from the npm package that ``make setup`` installs).

``scripts/install-restate.sh`` installs ``@restatedev/restate-server`` at a pinned version
into ``.tools/restate``; the npm package is a small Node wrapper around a native binary that
comes as an optional per-platform package (``@restatedev/restate-server-linux-x64``...).
:func:`find_server_binary` prefers that native binary, so that signals (and SIGKILL in
crash tests) reach the server itself rather than the wrapper.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from ecl.core.errors import EngineError

__all__ = ["INSTALL_HINT", "RestateProcess", "RestateServer", "find_server_binary", "free_port", "tools_dir"]

INSTALL_HINT = "install it with `make setup` (scripts/install-restate.sh: npm @restatedev/restate-server)"
"""What to tell a user whose machine has no ``restate-server``."""

_TOOLS = Path(".tools/restate")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tools_dir(root: Path | None = None) -> Path:
    """Where ``scripts/install-restate.sh`` installs the server (under the project root)."""
    return (root or Path(__file__).resolve().parents[4]) / _TOOLS


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    machine = {"x86_64": "x64", "AMD64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), platform.machine()
    )
    return f"restate-server-{system}-{machine}"


def _candidates(base: Path) -> list[Path]:
    modules = base / "node_modules"
    return [
        modules / "@restatedev" / _platform_package() / "bin" / "restate-server",
        modules / ".bin" / "restate-server",
    ]


def find_server_binary(configured: str | None = None, *, root: Path | None = None) -> Path:
    """The ``restate-server`` to run: ``configured``, then ``.tools/restate`` (under ``root``, the
    current folder and the project that holds this package), then the PATH.

    Raises :class:`~ecl.core.EngineError` with the install hint when there is none.
    """
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path.resolve()
        raise EngineError(f"restate.server_bin {configured!r} does not exist; {INSTALL_HINT}", engine="restate")
    bases = [tools_dir(root)] if root else []
    bases += [Path.cwd() / _TOOLS, tools_dir()]
    for base in bases:
        for candidate in _candidates(base):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate.resolve()
    found = shutil.which("restate-server")
    if found:
        return Path(found)
    raise EngineError(f"restate-server not found; {INSTALL_HINT}", engine="restate")


class RestateProcess:
    """What one ``restate-server`` process offers whatever started it (a lone server or a
    cluster node): its URLs, health, liveness and a crash."""

    host: str
    ingress_port: int
    admin_port: int
    proc: subprocess.Popen[bytes] | None

    @property
    def log_path(self) -> Path:
        """The process's output."""
        raise NotImplementedError

    @property
    def ingress_url(self) -> str:
        """Where workflows are invoked."""
        return f"http://{self.host}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        """The admin API."""
        return f"http://{self.host}:{self.admin_port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """Whether the admin API and the ingress both answer their health checks."""
        try:
            admin = httpx.get(f"{self.admin_url}/health", timeout=1)
            ingress = httpx.get(f"{self.ingress_url}/restate/health", timeout=1)
        except httpx.HTTPError:
            return False
        return admin.status_code == 200 and ingress.status_code == 200

    def check_not_exited(self, label: str = "restate-server") -> None:
        """Raise :class:`~ecl.core.EngineError` (with the log's tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise EngineError(
                f"{label} exited with {self.proc.returncode}; see {self.log_path}:\n{tail}", engine="restate"
            )

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout)


@dataclass
class RestateServer(RestateProcess):
    """Starts, waits for and stops one ``restate-server`` with its own ports and data.

    Every port defaults to a free one; the data (and ``restate.log``) live in ``data_dir``,
    so starting again on the same folder and ports continues where the server stopped.
    """

    data_dir: Path
    binary: Path | None = None
    ingress_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    node_port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    node_name: str = "ecl"
    partitions: int | None = None
    """Partitions provisioned on first start (Restate's default: 24)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra ``RESTATE_*`` settings (e.g. ``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT``)."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's output."""
        return self.data_dir / "restate.log"

    def command(self) -> list[str]:
        """The command line."""
        binary = self.binary or find_server_binary()
        args = [
            str(binary),
            "--no-logo",
            "--listen-mode",
            "tcp",
            "--base-dir",
            str(self.data_dir),
            "--bind-address",
            f"{self.host}:{self.node_port}",
            "--advertised-address",
            f"http://{self.host}:{self.node_port}",
            "--node-name",
            self.node_name,
            "--log-disable-ansi-codes",
            "true",
        ]
        if self.partitions is not None:
            args += ["--default-num-partitions", str(self.partitions)]
        return args

    def start(self, timeout: float = 60.0) -> RestateServer:
        """Start the server and wait until the admin API and the ingress answer."""
        if self.running:
            return self
        command = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            RESTATE_INGRESS__BIND_ADDRESS=f"{self.host}:{self.ingress_port}",
            RESTATE_ADMIN__BIND_ADDRESS=f"{self.host}:{self.admin_port}",
            RESTATE_ADMIN__ADVERTISED_ADMIN_ENDPOINT=self.admin_url,
            RESTATE_INGRESS__ADVERTISED_INGRESS_ENDPOINT=self.ingress_url,
            DO_NOT_TRACK="true",
        )
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_not_exited()
            if self.healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise EngineError(
            f"restate-server did not become healthy in {timeout:.0f}s; see {self.log_path}", engine="restate"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> RestateServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
