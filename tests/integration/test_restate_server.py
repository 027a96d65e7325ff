"""The Restate server that ``make setup`` installs, and the helper that runs it."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ecl.core.errors import EngineError
from ecl.engines.restate.server import RestateServer, find_server_binary
from tests.e2e.helpers import START_TIMEOUT

pytestmark = pytest.mark.restate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-restate.sh"


def pinned_version() -> str:
    found = re.search(r'VERSION="\$\{RESTATE_VERSION:-([0-9.]+)\}"', SCRIPT.read_text())
    assert found, "install-restate.sh must pin a version"
    return found.group(1)


def test_the_installed_server_is_the_pinned_native_binary() -> None:
    binary = find_server_binary()  # fails with "install it with `make setup`" when missing
    assert "restate-server-" in str(binary), f"{binary} is the Node wrapper, not the platform binary"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == ["restate-server", pinned_version()]


def test_install_script_is_idempotent_and_prints_the_binary() -> None:
    started = time.monotonic()
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    assert Path(done.stdout.strip()) == find_server_binary()


def test_docker_compose_runs_the_same_version() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) >= {"restate", "postgres", "ecl"}
    assert compose["services"]["restate"]["image"].endswith(f":{pinned_version()}")


def test_restart_and_crash_keep_the_data(tmp_path: Path) -> None:
    server = RestateServer(data_dir=tmp_path / "data", partitions=2)
    try:
        server.start(timeout=START_TIMEOUT)
        assert httpx.get(f"{server.admin_url}/version", timeout=10).json()["version"] == pinned_version()
        node_data = server.data_dir / server.node_name
        assert node_data.is_dir()  # the data lives in the folder given, nowhere else
        assert server.healthy()
        server.stop()
        assert not server.running and not server.healthy()
        server.start(timeout=START_TIMEOUT)
        server.kill()  # as a crash would
        server.start(timeout=START_TIMEOUT)
        assert server.healthy()
        assert "restate" in server.log_path.read_text()
    finally:
        server.stop()
    assert not server.running


def test_a_taken_port_fails_fast_and_points_at_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RestateServer(data_dir=tmp_path / "data", admin_port=taken.getsockname()[1])
        with pytest.raises(EngineError, match=r"restate\.log"):
            server.start(timeout=30)
    assert not server.running
