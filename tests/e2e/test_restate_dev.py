"""``ecl dev`` as a subprocess: a local Restate server plus the endpoint; Ctrl-C stops both."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ecl.engines.restate.server import free_port
from tests.e2e.helpers import Ecl, wait_until

pytestmark = [pytest.mark.restate, pytest.mark.e2e]


def _admin_query(admin: str, sql: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while True:  # right after a restart the partitions may not answer queries yet
        response = httpx.post(f"{admin}/query", json={"query": sql}, headers={"accept": "application/json"}, timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()["rows"]
    return rows


def _start_dev(ecl: Ecl, env: dict[str, str], admin: str, endpoint_port: int) -> subprocess.Popen[str]:
    proc = ecl.start("dev", "--llm", "mock", **env)

    def registered() -> bool:
        try:
            deployments = httpx.get(f"{admin}/deployments", timeout=5).json()["deployments"]
        except httpx.HTTPError:
            return False
        return any(f":{endpoint_port}" in d["uri"] for d in deployments)

    wait_until(registered, proc, "ecl dev's endpoint registration")
    return proc


def _stop_dev(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_ecl_dev_runs_workflows_that_survive_its_restart(tmp_path: Path) -> None:
    ecl = Ecl(tmp_path, "http://127.0.0.1:9")
    ingress, admin_port, endpoint = free_port(), free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    env = {
        "ECL_RESTATE__INGRESS_URL": f"http://127.0.0.1:{ingress}",
        "ECL_RESTATE__ADMIN_URL": admin,
        "ECL_RESTATE__ENDPOINT_PORT": str(endpoint),
    }
    proc = _start_dev(ecl, env, admin, endpoint)
    try:
        done = ecl.run("run", "critique-revise", "--topic", "Rust", "--id", "dev-1", "--engine", "restate",
                       "--format", "json", **env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["state"] == "completed"
        waiting = ecl.run("run", "critique-revise", "--topic", "Go", "--id", "dev-2", "--engine", "restate",
                          "--require-approval", "--detach", **env)  # fmt: skip
        assert waiting.returncode == 0, waiting.stderr
        ecl.wait_for("SELECT 1 FROM workflows WHERE id = 'dev-2' AND state = 'waiting_for_revision'")
    finally:
        err = _stop_dev(proc)
    assert "stopped" in err
    assert (tmp_path / ".restate" / "restate.log").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{admin}/health", timeout=2)  # the server went down with ecl dev

    # Started again on the same data: Restate still knows both workflows; the waiting one goes on.
    proc = _start_dev(ecl, env, admin, endpoint)
    try:
        rows = _admin_query(
            admin, "SELECT target_service_key AS wid, status FROM sys_invocation WHERE target_handler_name = 'run'"
        )
        assert {r["wid"]: r["status"] for r in rows}["dev-1"] == "completed"
        assert ecl.run("signal", "dev-2", "approve", "--engine", "restate", **env).returncode == 0
        done = ecl.run("run", "critique-revise", "--topic", "Go", "--id", "dev-2", "--engine", "restate",
                       "--require-approval", "--format", "json", **env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["state"] == "completed"
    finally:
        _stop_dev(proc)
    assert ecl.query("SELECT id, state FROM workflows ORDER BY id") == [("dev-1", "completed"), ("dev-2", "completed")]
