"""``ecl server start --workers 2``: two processes on one port, one database, each workflow
run exactly once."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import PASS, START_TIMEOUT, Ecl, answers, is_critique, is_generate, responder, stop, wait_until

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_worker_processes_run_each_workflow_once(tmp_path: Path) -> None:
    with FakeAnthropicServer() as fake:
        fake.responder = responder([PASS])
        ecl = Ecl(tmp_path, fake.url)
        assert ecl.run("migrate").returncode == 0
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = ecl.start("server", "start", "--port", str(port), "--workers", "2", ECL_LLM_PROVIDER="anthropic")
        try:
            wait_until(answers(f"{url}/health/live"), proc, "ecl server start --workers 2")
            # Both processes are up: each registered its own lease row.
            workers = ecl.wait_for("SELECT count(*) FROM workers HAVING count(*) = 2")
            assert workers == [(2,)]
            for i in range(20):
                body = {"definition_id": "critique-revise", "input": {"topic": f"t{i}"}}
                with httpx.Client(base_url=url, timeout=120) as client:  # a new connection each
                    created = client.post("/workflows", json=body)
                assert created.status_code == 201, created.text
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                done = ecl.query("SELECT count(*) FROM workflows WHERE state = 'completed'")[0][0]
                if done == 20:
                    break
                time.sleep(0.1)
            pids = {row[0] for row in ecl.query("SELECT pid FROM workers")}
            assert len(pids) == 2
            assert proc.pid in pids  # the parent serves too
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=START_TIMEOUT)
        finally:
            stop(proc)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    states = ecl.query("SELECT state, count(*) FROM workflows GROUP BY state")
    assert states == [("completed", 20)], states
    # Each ran exactly once: one generate and one critique call each, one attempt of each step.
    assert fake.count(is_generate) == 20
    assert fake.count(is_critique) == 20
    attempts = ecl.query("SELECT workflow_id, step_id, count(*) FROM step_executions GROUP BY workflow_id, step_id")
    assert len(attempts) == 60
    assert {n for _w, _s, n in attempts} == {1}
    # Both stopped cleanly: their lease rows are gone, nothing is owned.
    assert ecl.query("SELECT count(*) FROM workers") == [(0,)]
    assert ecl.query("SELECT count(*) FROM workflows WHERE owner IS NOT NULL") == [(0,)]


def test_workers_need_a_shared_database(tmp_path: Path) -> None:
    ecl = Ecl(tmp_path, "http://127.0.0.1:9")
    done = ecl.run("server", "start", "--port", str(free_port()), "--workers", "2", ECL_DATABASE_URL="sqlite://")
    assert done.returncode != 0
    assert "--workers 2" in done.stderr
    assert "in-memory" in done.stderr
