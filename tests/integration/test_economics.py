"""LLM economics through the real ``ecl`` executable, the official SDK and the fake server:
exact costs, budgets, the breaker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ecl.testing import FakeAnthropicServer, ReceivedRequest, Reply
from tests.e2e.helpers import PASS, Ecl, is_critique

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
    done = ecl.run("run", "critique-revise", "--topic", "Rust", "--llm", "anthropic", "--format", "json", timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert fake.count() == 2
    assert Decimal(result["cost_usd"]) == 2 * CALL_COST == Decimal("0.0103")
    stored = [Decimal(row[0]) for row in ecl.query("SELECT cost_usd FROM llm_calls")]
    assert stored == [CALL_COST, CALL_COST]
    wid = result["workflow_id"]
    status = ecl.json("status", wid)
    assert Decimal(status["llm_totals"]["cost_usd"]) == 2 * CALL_COST
    assert sum(Decimal(s["cost_usd"]) for s in status["steps"]) == 2 * CALL_COST
    listed = ecl.json("list")
    assert Decimal(listed["items"][0]["cost_usd"]) == 2 * CALL_COST
    logs = ecl.run("logs", wid)
    assert f"cost=${CALL_COST}" in logs.stdout


def test_an_unpriced_model_stops_the_start_with_one_line(ecl: Ecl, fake: FakeAnthropicServer) -> None:
    done = ecl.run("run", "critique-revise", "--topic", "Rust", "--llm", "anthropic", ECL_LLM_MODEL="claude-nope-1")
    assert done.returncode != 0
    assert "claude-nope-1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fake.count() == 0
