"""LLM economics through the real ``ecl`` executable, the official SDK and the fake server:
exact costs, budgets, the breaker."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecl.llm import AnthropicProvider, PriceTable
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext, ReceivedRequest, Reply
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, builtin_steps
from tests.e2e.helpers import ECL, PASS, REVISE, Ecl, is_critique, kill
from tests.unit.workflows_support import RecordingRecorder

# The machine these run on may be busy: every subprocess gets minutes, not seconds.
pytestmark = pytest.mark.timeout(900)
SLOW = 300


def _json(ecl: Ecl, *args: str) -> Any:
    done = ecl.run(*args, "--format", "json", timeout=SLOW)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 4000,
}
# claude-sonnet-5-5: $2 in, $10 out, $2.50 cache write, $0.10 cache read per million tokens
CALL_COST = (1000 * Decimal(2) + 200 * Decimal(10) + 300 * Decimal("2.5") + 4000 * Decimal("0.1")) / 1_000_000


def _reply(request: ReceivedRequest) -> Reply:
    return Reply(text=PASS if is_critique(request) else "a draft", usage=USAGE)


@pytest.fixture
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(responder=_reply) as server:
        yield server


@pytest.fixture
def ecl(tmp_path: Path, fake: FakeAnthropicServer) -> Ecl:
    return Ecl(tmp_path, fake.url)


def test_every_call_carries_its_exact_cost(ecl: Ecl, fake: FakeAnthropicServer) -> None:
    done = ecl.run("run", "critique-revise", "--topic", "Rust", "--llm", "anthropic", "--format", "json", timeout=SLOW)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert fake.count() == 2
    assert Decimal(result["cost_usd"]) == 2 * CALL_COST == Decimal("0.0103")
    stored = [Decimal(row[0]) for row in ecl.query("SELECT cost_usd FROM llm_calls")]
    assert stored == [CALL_COST, CALL_COST]
    wid = result["workflow_id"]
    status = _json(ecl, "status", wid)
    assert Decimal(status["llm_totals"]["cost_usd"]) == 2 * CALL_COST
    assert sum(Decimal(s["cost_usd"]) for s in status["steps"]) == 2 * CALL_COST
    listed = _json(ecl, "list")
    assert Decimal(listed["items"][0]["cost_usd"]) == 2 * CALL_COST
    logs = ecl.run("logs", wid, timeout=SLOW)
    assert f"cost=${CALL_COST}" in logs.stdout


def test_an_unpriced_model_stops_the_start_with_one_line(ecl: Ecl, fake: FakeAnthropicServer) -> None:
    done = ecl.run(
        "run", "critique-revise", "--topic", "Rust", "--llm", "anthropic", timeout=SLOW, ECL_LLM_MODEL="claude-nope-1"
    )
    assert done.returncode != 0
    assert "claude-nope-1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fake.count() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _breaker_state(metrics_text: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith("ecl_llm_breaker_state{") and 'model="claude-sonnet-5-5"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_529_storm_opens_the_breaker_visibly_and_the_workflow_waits_it_out(tmp_path: Path) -> None:
    storm = threading.Event()
    storm.set()

    def reply(request: ReceivedRequest) -> Reply:
        if storm.is_set():
            return Reply(status=529)
        return Reply(text=PASS if is_critique(request) else "a draft")

    with FakeAnthropicServer(responder=reply) as fake:
        ecl = Ecl(tmp_path, fake.url)
        assert ecl.run("migrate", timeout=SLOW).returncode == 0
        port = _free_port()
        log = (tmp_path / "server.log").open("w")
        proc = subprocess.Popen(
            [ECL, "server", "start", "--port", str(port), "--llm", "anthropic"],
            env=ecl.env(
                ECL_LOG_LEVEL="info",
                ECL_LOG_FORMAT="json",
                ECL_LLM__BREAKER__OPEN_SECONDS="15",
                # One call's retry budget is all the requests a step sends (steps never retry an
                # LlmError): room for the five failures that open the breaker, then the trial.
                ECL_LLM__RETRY__MAX_ATTEMPTS="6",
                ECL_LLM__RETRY__INITIAL_DELAY="0.01",
            ),
            cwd=tmp_path,
            stdout=log,
            stderr=log,
        )
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        try:
            deadline = time.monotonic() + SLOW
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if api.get("/health/live").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            assert api.get("/health/ready").json()["status"] == "ok"
            wid = api.post("/workflows", json={"definition_id": "critique-revise", "input": {"topic": "Rust"}}).json()[
                "id"
            ]
            deadline = time.monotonic() + SLOW
            while True:
                ready = api.get("/health/ready")
                breaker = ready.json()["breakers"].get("anthropic/claude-sonnet-5-5", {})
                if breaker.get("state") == "open":
                    break
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.05)
            # Five retryable failures in the window opened it; nothing more reaches the provider.
            assert fake.count() == 5
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert _breaker_state(api.get("/metrics").text) == 2
            assert api.get(f"/workflows/{wid}").json()["state"] == "running"  # waiting, not failed
            storm.clear()
            deadline = time.monotonic() + SLOW
            while api.get(f"/workflows/{wid}").json()["state"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            ready = api.get("/health/ready").json()
            assert ready["status"] == "ok"
            assert ready["breakers"]["anthropic/claude-sonnet-5-5"]["state"] == "closed"
            text = api.get("/metrics").text
            assert _breaker_state(text) == 0
            assert (
                'ecl_llm_breaker_transitions_total{model="claude-sonnet-5-5",provider="anthropic",state="open"}' in text
            )
            assert 'ecl_llm_requests_total{model="claude-sonnet-5-5",outcome="ok",provider="anthropic"} 2.0' in text
        finally:
            api.close()
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
        events = [
            json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")
        ]
        transitions = [e["event"] for e in events if str(e.get("event", "")).startswith("circuit breaker")]
        assert transitions[0] == "circuit breaker open"
        assert transitions[-1] == "circuit breaker closed"
        assert "circuit breaker half-open" in transitions


def test_acceptance_a_tiny_budget_stops_before_the_first_call_and_a_signal_completes_it(ecl: Ecl) -> None:
    wid = "tiny-budget"
    args = ("run", "critique-revise", "--topic", "X", "--llm", "mock", "--budget-usd", "0.0001", "--id", wid)
    proc = ecl.start(*args)
    try:
        ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_budget'", wid, timeout=SLOW)
        assert ecl.query("SELECT COUNT(*) FROM llm_calls WHERE workflow_id = ?", wid) == [(0,)]
        signalled = ecl.run("signal", wid, "budget", "--add-usd", "2", timeout=SLOW)
        assert signalled.returncode == 0, signalled.stderr
        out, err = proc.communicate(timeout=SLOW)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert proc.returncode == 0, err
    said = [line for line in err.splitlines() if "over budget" in line]
    assert len(said) == 1 and "would cross the budget of $0.0001" in said[0], err
    assert f"ecl signal {wid} budget --add-usd N" in said[0]
    assert "completed" in out
    costs = [Decimal(r[0]) for r in ecl.query("SELECT cost_usd FROM llm_calls WHERE workflow_id = ?", wid)]
    status = _json(ecl, "status", wid)
    assert Decimal(status["llm_totals"]["cost_usd"]) == sum(costs, Decimal(0)) > 0


def test_acceptance_for_the_code_first_twin(ecl: Ecl) -> None:
    """The same acceptance for ``critique-revise-py`` (a code-first workflow: the same budget)."""
    wid = "tiny-budget-py"
    args = ("run", "critique-revise-py", "--topic", "X", "--llm", "mock", "--budget-usd", "0.0001", "--id", wid)
    proc = ecl.start(*args)
    try:
        ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_budget'", wid, timeout=SLOW)
        assert ecl.query("SELECT COUNT(*) FROM llm_calls WHERE workflow_id = ?", wid) == [(0,)]
        signalled = ecl.run("signal", wid, "budget", "--add-usd", "2", timeout=SLOW)
        assert signalled.returncode == 0, signalled.stderr
        out, err = proc.communicate(timeout=SLOW)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert proc.returncode == 0, err
    said = [line for line in err.splitlines() if "over budget" in line]
    assert len(said) == 1 and "would cross the budget of $0.0001" in said[0], err
    assert f"ecl signal {wid} budget --add-usd N" in said[0]
    assert "completed" in out
    costs = [Decimal(r[0]) for r in ecl.query("SELECT cost_usd FROM llm_calls WHERE workflow_id = ?", wid)]
    status = _json(ecl, "status", wid)
    assert Decimal(status["llm_totals"]["cost_usd"]) == sum(costs, Decimal(0)) > 0
    failed = ecl.run(
        "run", "critique-revise-py", "--topic", "X", "--llm", "mock", "--budget-usd", "0.0001", "--format", "json",
        timeout=SLOW, ECL_BUDGET__ON_EXCEEDED="fail",
    )  # fmt: skip
    assert failed.returncode == 10, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["type"] == "BudgetExceeded" and error["budget_usd"] == "0.0001" and error["step_id"] == "generate"


def test_fail_mode_fails_with_budget_exceeded(ecl: Ecl, fake: FakeAnthropicServer) -> None:
    done = ecl.run(
        "run", "critique-revise", "--topic", "X", "--llm", "anthropic", "--budget-usd", "0.0001", "--format", "json",
        timeout=SLOW, ECL_BUDGET__ON_EXCEEDED="fail",
    )  # fmt: skip
    assert done.returncode == 10, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "BudgetExceeded"
    assert error["budget_usd"] == "0.0001" and error["spent_usd"] == "0"
    assert error["call"]["model"] == "claude-sonnet-5-5"
    assert fake.count() == 0  # the refused call never reached the server


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--budget-usd", "-1"), "--budget-usd = '-1': must be a number >= 0"),
        (("--budget-usd", "ten"), "--budget-usd = 'ten': not a number"),
        (("--budget-tokens", "many"), "budget_tokens = 'many': not a whole number"),
    ],
)
def test_bad_budgets_on_the_command_line(ecl: Ecl, args: tuple[str, ...], needle: str) -> None:
    done = ecl.run("run", "critique-revise", "--topic", "X", "--llm", "mock", *args, timeout=SLOW)
    assert done.returncode == 4, done.stderr
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_bad_top_up_is_refused_with_one_line(ecl: Ecl) -> None:
    done = ecl.run("signal", "any-id", "budget", "--add-usd", "-3", timeout=SLOW)
    assert done.returncode == 4
    assert "add_usd = '-3': must be a number >= 0" in done.stderr
    assert ecl.run("signal", "any-id", "budget", timeout=SLOW).returncode == 4


async def test_prompt_caching_marks_the_system_prompt_and_the_critique_instructions() -> None:
    critiques = iter([REVISE, PASS])

    def reply(request: ReceivedRequest) -> str:
        if is_critique(request):
            return next(critiques)
        return "draft 1" if "Revise the draft below" in request.text else "draft 0"

    with FakeAnthropicServer(responder=reply) as server:
        llm = AnthropicProvider("sk-test", "claude-sonnet-5-5", base_url=server.url)
        rec = RecordingRecorder()
        orchestrator = WorkflowOrchestrator(DefinitionRegistry.with_builtins(), builtin_steps(), llm)
        result = await orchestrator.run(
            InMemoryDurableContext("cache"), "critique-revise", {"topic": "Rust"}, recorder=rec
        )
        await llm.close()
    assert result.revisions == 1
    sent = [r.json for r in server.requests]
    assert all(body["system"][0]["cache_control"] == {"type": "ephemeral"} for body in sent)
    critique_bodies = [body for r, body in zip(server.requests, sent, strict=True) if is_critique(r)]
    blocks = critique_bodies[0]["messages"][0]["content"]
    assert blocks[0]["cache_control"] == {"type": "ephemeral"} and "draft 0" not in blocks[0]["text"]
    assert "draft 0" in blocks[1]["text"] and "cache_control" not in blocks[1]
    # The second critique reads the instructions from the cache; cache tokens are priced as such.
    critiques_usage = [c["usage"] for c in rec.calls if c["usage"].cache_creation or c["usage"].cache_read]
    assert any(u.cache_read > 0 for u in critiques_usage)
    price = PriceTable.shipped().find("anthropic", "claude-sonnet-5-5")
    assert price is not None
    assert result.cost_usd == sum((price.cost(c["usage"]) for c in rec.calls), Decimal(0))


async def test_a_step_can_turn_prompt_caching_off() -> None:
    steps = builtin_steps()
    critique = type(steps.get("critique"))
    with FakeAnthropicServer(responder=lambda r: PASS if is_critique(r) else "draft 0") as server:
        llm = AnthropicProvider("sk-test", "claude-sonnet-5-5", base_url=server.url)
        critique.prompt_cache = False
        try:
            orchestrator = WorkflowOrchestrator(DefinitionRegistry.with_builtins(), steps, llm)
            await orchestrator.run(InMemoryDurableContext("nocache"), "critique-revise", {"topic": "Rust"})
        finally:
            critique.prompt_cache = True
            await llm.close()
    generate, critique_request = server.requests
    assert isinstance(generate.json["system"], list)  # generate still marks its system prompt
    assert isinstance(critique_request.json["system"], str)
    assert isinstance(critique_request.json["messages"][0]["content"], str)
