"""Crash tests: SIGKILL the ``ecl`` process mid-workflow, then resume it.

The LLM is the fake Anthropic server over real HTTP; its request log proves that no
completed step was paid for twice.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import (
    PASS,
    REVISE,
    START_TIMEOUT,
    Ecl,
    is_critique,
    is_generate,
    is_revise,
    kill,
    responder,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


@pytest.fixture
def ecl(tmp_path: Path, server: FakeAnthropicServer) -> Ecl:
    return Ecl(tmp_path, server.url)


def test_kill_during_critique_then_resume_never_repeats_generate(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    hold = server.hold_next(is_critique)
    proc = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "crash-1", "--llm", "anthropic")
    hold.wait_arrived(START_TIMEOUT)
    kill(proc)
    hold.release()
    # The request in flight was recorded before it went out, although nobody saw its answer.
    sent = ecl.query("SELECT outcome FROM llm_calls WHERE workflow_id = 'crash-1' ORDER BY created_at")
    assert sent == [("ok",), ("pending",)]

    done = ecl.run("resume", "crash-1", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "completed"
    assert result["final_text"] == "draft 0"
    assert server.count(is_generate) == 1
    assert server.count(is_critique) == 2  # the one in flight ran again
    rows = ecl.query("SELECT step_id, state FROM step_executions ORDER BY started_at")
    assert rows == [
        ("generate", "completed"),
        ("critique", "interrupted"),
        ("critique", "completed"),
        ("final", "completed"),
    ]
    assert ecl.query("SELECT state, owner FROM workflows") == [("completed", None)]
    calls = ecl.query("SELECT outcome FROM llm_calls WHERE workflow_id = 'crash-1' ORDER BY created_at")
    # One row per request the provider received (and bills): the orphan is settled at recovery.
    assert calls == [("ok",), ("interrupted",), ("ok",)]
    assert len(calls) == server.count()


def test_kill_during_revision_loop_keeps_count_and_draft(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([REVISE, PASS])
    # Hold the critique of the first revision: generate, critique, revise are done.
    hold = server.hold_next(lambda r: is_critique(r) and "draft 1" in r.text)
    proc = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "loop-1", "--llm", "anthropic")
    hold.wait_arrived(START_TIMEOUT)
    kill(proc)
    hold.release()

    result = ecl.json("resume", "loop-1")
    assert result["state"] == "completed"
    assert result["revisions"] == 1
    assert result["final_text"] == "draft 1"
    assert server.count(is_generate) == 1
    assert server.count(is_revise) == 1
    state = dict(ecl.query("SELECT name, payload FROM journal_entries WHERE kind = 'set' ORDER BY seq"))
    assert json.loads(state["current_draft"]) == "draft 1"
    assert json.loads(str(state["revision_count"])) == 1


def test_approval_promise_survives_a_kill(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    proc = ecl.start(
        "run",
        "critique-revise",
        "--topic",
        "Rust",
        "--id",
        "ok-1",
        "--llm",
        "anthropic",
        "--require-approval",
    )
    ecl.wait_for("SELECT 1 FROM workflows WHERE id = 'ok-1' AND state = 'waiting_for_revision'")
    kill(proc)
    signalled = ecl.run("signal", "ok-1", "approve")
    assert signalled.returncode == 0, signalled.stderr
    result = ecl.json("resume", "ok-1")
    assert result["state"] == "completed"
    assert server.count(is_generate) == 1
    assert server.count(is_critique) == 1


def test_revise_signal_runs_another_revision(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    proc = ecl.start(
        "run",
        "critique-revise",
        "--topic",
        "Rust",
        "--id",
        "rv-1",
        "--llm",
        "anthropic",
        "--require-approval",
    )
    ecl.wait_for("SELECT 1 FROM workflows WHERE id = 'rv-1' AND state = 'waiting_for_revision'")
    assert ecl.run("signal", "rv-1", "revise", "--feedback", "more detail").returncode == 0
    ecl.wait_for("SELECT 1 FROM promises WHERE workflow_id = 'rv-1' AND name = 'approval' AND resolved_at IS NOT NULL")
    ecl.wait_for("SELECT 1 FROM journal_entries WHERE workflow_id = 'rv-1' AND name = 'step:final:1'")
    assert ecl.run("signal", "rv-1", "approve").returncode == 0
    out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 0, err
    assert server.count(is_revise) == 1
    assert "draft 1" in out


def test_kill_during_journal_commit_leaves_a_consistent_database(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    proc = ecl.start(
        "run",
        "critique-revise",
        "--topic",
        "Rust",
        "--id",
        "commit-1",
        "--llm",
        "anthropic",
        ECL_DEBUG_COMMIT_DELAY_MS="400",
    )
    # The generate request has been answered; its journal entry is now being committed
    # (each transaction sleeps 400 ms before COMMIT).
    deadline = time.monotonic() + 30
    while server.count(is_generate) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)
    kill(proc)
    assert ecl.query("PRAGMA integrity_check") == [("ok",)]
    journal = ecl.query("SELECT name, status, payload FROM journal_entries WHERE workflow_id = 'commit-1'")
    for _name, status, payload in journal:
        assert status in ("ok", "error")
        json.loads(payload)  # no half-written entry
    result = ecl.json("resume", "commit-1")
    assert result["state"] == "completed"
    assert ecl.query("PRAGMA integrity_check") == [("ok",)]


def test_two_processes_never_run_the_same_workflow(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    hold = server.hold_next(is_critique)
    first = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "dup-1", "--llm", "anthropic")
    hold.wait_arrived(START_TIMEOUT)
    second = ecl.start("resume", "dup-1", "--format", "json")
    assert second.stderr is not None
    waiting = second.stderr.readline()  # blocks until the loser says why it waits
    assert "waiting for its lease" in waiting
    assert second.poll() is None  # it waits for the live owner; it does not run the workflow
    hold.release()
    _out1, err1 = first.communicate(timeout=START_TIMEOUT)
    out2, err2 = second.communicate(timeout=START_TIMEOUT)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert json.loads(out2)["state"] == "completed"
    assert server.count(is_generate) == 1
    assert server.count(is_critique) == 1
    assert ecl.query("SELECT count(*) FROM step_executions WHERE step_id = 'final'") == [(1,)]


def test_ctrl_c_leaves_the_run_resumable_and_says_how(ecl: Ecl, server: FakeAnthropicServer) -> None:
    server.responder = responder([PASS])
    hold = server.hold_next(is_critique)
    proc = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "int-1", "--llm", "anthropic")
    hold.wait_arrived(START_TIMEOUT)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=START_TIMEOUT)
    hold.release()
    assert proc.returncode == 130
    assert "ecl resume int-1" in err
    assert "Traceback" not in err
    assert ecl.query("SELECT state FROM workflows") == [("running",)]

    done = ecl.run("resume", "int-1", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    assert server.count(is_generate) == 1
