"""A workflow that waits shows what for, in ``ecl status`` and ``GET /workflows/{id}``, while it
waits and not after (issue 13): for the provider's rate limit, for a slot of its definition
(``max_concurrent_workflows``, embedded engine) and for budget (``waiting_for_budget``).
Against ``ecl server start`` (embedded engine) on SQLite and PostgreSQL, and the fake
Anthropic server over HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecl.testing import FakeAnthropicServer, ReceivedRequest, Reply
from tests.db_fixtures import fresh_pg
from tests.e2e.helpers import PASS, START_TIMEOUT, Ecl, answers, is_critique, is_generate, responder, stop, wait_until

pytestmark = pytest.mark.e2e

KEY = "test-waiting-key-123"
MODEL = "claude-sonnet-4-6"
PAUSE = 20.0  # seconds the provider's rate-limit headers pause the model for
EXAMPLE = Path(__file__).parents[2] / "examples/definitions/critique-revise.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_with_a_pause(critiques: list[str]) -> Callable[[ReceivedRequest], str | Reply]:
    """As :func:`responder`; the draft of topic ``slow`` comes with headers saying no request
    is left for ``PAUSE`` seconds (the next call of the model waits for the reset)."""
    plain = responder(critiques)

    def respond(request: ReceivedRequest) -> str | Reply:
        text = plain(request)
        if is_generate(request) and "slow" in request.text:
            reset = (datetime.now(UTC) + timedelta(seconds=PAUSE)).isoformat()
            headers = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
            return Reply(text=text, headers=headers)
        return text

    return respond


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(responder=_answers_with_a_pause([PASS])) as server:
        yield server


@dataclass
class _Ecl(Ecl):
    """:class:`Ecl` on ``database_url`` (its own SQLite file when empty)."""

    database_url: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        if self.database_url:
            extra = {"ECL_DATABASE_URL": self.database_url, **extra}
        return super().env(**extra)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ecl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropicServer) -> Ecl:
    url = fresh_pg(request.getfixturevalue("pg_url")) if request.param == "postgres" else ""
    tmp = tmp_path_factory.mktemp("waiting")
    definitions = tmp / "definitions"
    definitions.mkdir()
    one = EXAMPLE.read_text(encoding="utf-8").replace("id: critique-revise", "id: one-at-a-time", 1)
    (definitions / "one-at-a-time.yaml").write_text(
        one.replace("options:\n", "options:\n  max_concurrent_workflows: 1\n", 1), encoding="utf-8"
    )
    return _Ecl(tmp, fake.url, url)


@pytest.fixture(scope="module")
def api(ecl: Ecl) -> Iterator[httpx.Client]:
    assert ecl.run("migrate").returncode == 0
    port = _free_port()
    env = {
        "ECL_API_KEY": KEY,
        "ECL_LLM_PROVIDER": "anthropic",
        "ECL_LLM_MODEL": MODEL,
        "ECL_DEFINITIONS_PATH": str(ecl.tmp / "definitions"),
    }
    proc = ecl.start("server", "start", "--port", str(port), **env)
    try:
        wait_until(answers(f"http://127.0.0.1:{port}/health/live"), proc, "ecl server start")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY}, timeout=120) as client:
            yield client
    finally:
        stop(proc)


def _until(api: httpx.Client, wid: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/workflows/{wid}").json()
        if done(body):
            return body
        assert body["state"] not in ("completed", "failed", "cancelled"), body
        time.sleep(0.1)
    raise TimeoutError(wid)


def _ended(body: dict[str, Any]) -> bool:
    return body["state"] in ("completed", "failed", "cancelled")


def _status(ecl: Ecl, wid: str) -> dict[str, Any]:
    """``ecl status ID --format json``'s workflow."""
    workflow: dict[str, Any] = ecl.json("status", wid)["workflow"]
    return workflow


def _submit(api: httpx.Client, definition: str, data: dict[str, Any]) -> str:
    created = api.post("/workflows", json={"definition_id": definition, "input": data})
    assert created.status_code == 201, created.text
    wid: str = created.json()["id"]
    return wid


def test_a_wait_for_the_rate_limit_shows_in_status_while_it_lasts(
    api: httpx.Client, ecl: Ecl, fake: FakeAnthropicServer
) -> None:
    went_on = fake.hold_next(is_critique)  # the call that waits, once it is sent
    wid = _submit(api, "critique-revise", {"topic": "slow"})
    waiting = _until(api, wid, lambda body: body["waiting"] is not None)
    assert waiting["state"] == "running"
    wait = waiting["waiting"]
    assert wait["reason"] == "rate_limit", wait
    assert wait["model"] == f"anthropic/{MODEL}"
    assert wait["why"] == "retry-after"  # the provider's reset
    assert wait["step_id"] == "critique"
    assert 1 <= wait["seconds"] <= PAUSE
    assert datetime.fromisoformat(wait["until"]) > datetime.fromisoformat(wait["since"])
    until = datetime.fromisoformat(wait["until"])
    shown = _status(ecl, wid)
    table = ecl.run("status", wid).stdout
    # Both read the row before the wait could end (it ends at ``until``; PAUSE leaves the
    # commands seconds to spare): they show it.
    assert datetime.now(UTC) < until, "the machine took longer than the pause to run ecl status twice"
    assert shown["waiting"] == wait
    assert f"rate limit of anthropic/{MODEL} (retry-after)" in table, table
    try:
        went_on.wait_arrived(START_TIMEOUT)
        # The call went on: the workflow (still running) no longer shows a wait.
        assert _until(api, wid, lambda body: body["waiting"] is None)["state"] == "running"
        assert _status(ecl, wid)["waiting"] is None
    finally:
        went_on.release()
    done = _until(api, wid, _ended)
    assert done["state"] == "completed", done
    assert done["waiting"] is None
    assert _status(ecl, wid)["waiting"] is None
    # The wait that is over stays in the trace: when it began, what for, and how long it lasted.
    logged = ecl.json("logs", wid)
    waits = [e for e in logged if e["kind"] in ("waiting", "waited")]
    assert [(e["kind"], e["waiting"]) for e in waits] == [("waiting", wait), ("waited", wait)], waits
    assert 0 < waits[1]["seconds"] < START_TIMEOUT
    assert waits[1]["text"].startswith(f"waited {waits[1]['seconds']:.1f} s for rate limit of anthropic/{MODEL}")
    kinds = [e["kind"] for e in logged]
    assert kinds.index("waited") < kinds.index("verdict")


def test_a_wait_for_a_slot_shows_in_status_while_it_lasts(
    api: httpx.Client, ecl: Ecl, fake: FakeAnthropicServer
) -> None:
    hold = fake.hold_next(lambda request: is_generate(request) and "first" in request.text)
    started = fake.hold_next(lambda request: is_generate(request) and "second" in request.text)
    first = _submit(api, "one-at-a-time", {"topic": "first"})
    hold.wait_arrived(START_TIMEOUT)
    try:
        second = _submit(api, "one-at-a-time", {"topic": "second"})
        waiting = _until(api, second, lambda body: body["waiting"] is not None)
        assert waiting["state"] == "running"
        wait = waiting["waiting"]
        assert wait["reason"] == "slot", wait
        assert (wait["definition_id"], wait["limit"]) == ("one-at-a-time", 1)
        assert _status(ecl, second)["waiting"] == wait  # held until the first one ends
        assert "a slot of one-at-a-time (max_concurrent_workflows = 1)" in ecl.run("status", second).stdout
        assert api.get(f"/workflows/{first}").json()["waiting"] is None
    finally:
        hold.release()
    try:
        started.wait_arrived(START_TIMEOUT)
        # It got the slot and runs: no wait shown any more.
        assert _until(api, second, lambda body: body["waiting"] is None)["state"] == "running"
        assert _status(ecl, second)["waiting"] is None
    finally:
        started.release()
    for wid in (first, second):
        done = _until(api, wid, _ended)
        assert done["state"] == "completed", done
        assert done["waiting"] is None
        assert _status(ecl, wid)["waiting"] is None


def test_a_wait_for_budget_shows_the_refusal_in_status(api: httpx.Client, ecl: Ecl, fake: FakeAnthropicServer) -> None:
    sent = fake.count()
    wid = _submit(api, "critique-revise", {"topic": "budget", "budget_usd": "0.0001"})
    waiting = _until(api, wid, lambda body: body["state"] == "waiting_for_budget")
    assert fake.count() == sent
    wait = waiting["waiting"]
    assert wait["reason"] == "budget", wait
    assert wait["budget_usd"] == "0.0001"
    assert wait["spent_usd"] == "0"
    assert wait["call"]["model"] == MODEL
    assert wait["call"]["max_tokens"] > 0
    assert "would cross the budget of $0.0001" in wait["message"]
    assert _status(ecl, wid)["waiting"] == wait
    assert "would cross the budget of $0.0001" in ecl.run("status", wid).stdout
    going_on = fake.hold_next(lambda request: is_generate(request) and "budget" in request.text)
    try:
        topped = api.post(f"/workflows/{wid}/signal", json={"name": "budget", "payload": {"add_usd": "2"}})
        assert topped.status_code == 202, topped.text
        going_on.wait_arrived(START_TIMEOUT)  # the refused call, sent after the top-up
        assert api.get(f"/workflows/{wid}").json()["state"] == "running"
        assert _until(api, wid, lambda body: body["waiting"] is None)["state"] == "running"
        assert _status(ecl, wid)["waiting"] is None
    finally:
        going_on.release()
    done = _until(api, wid, _ended)
    assert done["state"] == "completed", done
    assert done["waiting"] is None
    assert _status(ecl, wid)["waiting"] is None
