"""One behavioural suite, run on both engines: the embedded engine and a real Restate server.

The LLM is the fake Anthropic server over HTTP; workflows are driven through the real
``ecl`` executable (``--engine embedded`` or ``--engine restate``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecl.engines.restate.server import RestateServer, free_port
from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import (
    PASS,
    REVISE,
    START_TIMEOUT,
    Ecl,
    answers,
    is_critique,
    is_generate,
    is_revise,
    keep,
    kill,
    responder,
    stop,
    wait_until,
)

pytestmark = pytest.mark.restate


class RestateStack:
    """A real restate-server plus an ECL endpoint subprocess registered with it."""

    def __init__(self, ecl: Ecl) -> None:
        self.ecl = ecl
        self.server = RestateServer(data_dir=ecl.tmp / "restate-data")
        self.endpoint_port = free_port()
        self.endpoint: subprocess.Popen[str] | None = None

    def env(self) -> dict[str, str]:
        return {
            "ECL_RESTATE__INGRESS_URL": self.server.ingress_url,
            "ECL_RESTATE__ADMIN_URL": self.server.admin_url,
            "ECL_RESTATE__ENDPOINT_PORT": str(self.endpoint_port),
        }

    def start_endpoint(self) -> None:
        args = ("server", "start", "--engine", "restate", "--llm", "anthropic")
        self.endpoint = keep(self.ecl.start(*args, **self.env()))

        def registered() -> bool:
            deployments = httpx.get(f"{self.server.admin_url}/deployments", timeout=5).json()
            uris = [d.get("uri", "") for d in deployments.get("deployments", [])]
            return any(str(self.endpoint_port) in uri for uri in uris)

        wait_until(registered, self.endpoint, "the ECL endpoint's registration")

    def stop_endpoint(self) -> None:
        if self.endpoint is not None:
            stop(self.endpoint)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropicServer) -> Ecl:
    ecl = Ecl(tmp_path_factory.mktemp("behaviour"), fake.url)
    assert ecl.run("migrate").returncode == 0
    return ecl


@pytest.fixture(scope="module")
def stack(base: Ecl) -> Iterator[RestateStack]:
    stack = RestateStack(base)
    try:
        stack.server.start(timeout=START_TIMEOUT)
        stack.start_endpoint()
        yield stack
    finally:
        stack.stop_endpoint()
        stack.server.stop()


class Driver:
    """Runs CLI commands on one engine."""

    def __init__(self, engine: str, ecl: Ecl, extra_env: dict[str, str]) -> None:
        self.engine = engine
        self.ecl = ecl
        self.env = extra_env

    def run(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.ecl.run(*args, timeout=timeout, **self.env)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return self.ecl.start(*args, **self.env)

    def workflow(
        self, wid: str, *extra: str, definition: str = "critique-revise", timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        args = ["run", definition, "--topic", "Rust", "--id", wid, "--format", "json", *extra]
        args += ["--engine", self.engine]
        if self.engine == "embedded":
            args += ["--llm", "anthropic"]
        return self.run(*args, timeout=timeout)


@pytest.fixture(params=["embedded", "restate"])
def driver(request: pytest.FixtureRequest, base: Ecl) -> Driver:
    if request.param == "restate":
        stack: RestateStack = request.getfixturevalue("stack")
        return Driver("restate", base, stack.env())
    return Driver("embedded", base, {})


def unique(prefix: str, driver: Driver) -> str:
    return f"{prefix}-{driver.engine}-{time.monotonic_ns() % 10**9}"


def result_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_happy_path(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder([PASS])
    wid = unique("happy", driver)
    done = driver.workflow(wid)
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert result["state"] == "completed"
    assert result["outputs"]["final"]["text"] == "draft 0"
    status = driver.ecl.json("status", wid)
    assert status["workflow"]["state"] == "completed"
    assert [s["step_id"] for s in status["steps"] if s["state"] == "completed"] == ["generate", "critique", "final"]
    assert status["llm_totals"]["calls"] == 2


def test_revision_path(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder([REVISE, PASS])
    revisions_before = fake.count(is_revise)
    result = result_of(driver.workflow(unique("rev", driver)))
    assert result["state"] == "completed"
    assert result["revisions"] == 1
    assert result["outputs"]["final"]["text"] == "draft 1"
    assert fake.count(is_revise) - revisions_before == 1


def test_max_revisions(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder([REVISE])
    done = driver.workflow(unique("max", driver))
    assert done.returncode == 10
    result = result_of(done)
    assert result["state"] == "failed"
    assert result["error"]["type"] == "MaxRevisionsExceeded"
    assert result["error"]["attempts"] == 3


def test_invalid_critique_json(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder(["this is not JSON"])
    done = driver.workflow(unique("json", driver))
    assert done.returncode == 10
    error = result_of(done)["error"]
    assert error["type"] == "StepValidationError"
    assert error["step_id"] == "critique"
    assert "did not answer with JSON" in error["message"]


def test_human_approval_via_durable_promise(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder([PASS])
    wid = unique("approve", driver)
    args = ["run", "critique-revise", "--topic", "Rust", "--id", wid, "--require-approval", "--format", "json"]
    args += ["--engine", driver.engine] + (["--llm", "anthropic"] if driver.engine == "embedded" else [])
    proc = driver.start(*args)
    driver.ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_revision'", wid)
    signalled = driver.run("signal", wid, "approve", "--engine", driver.engine)
    assert signalled.returncode == 0, signalled.stderr
    out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "completed"


def test_signals_are_in_the_trace_in_order_with_the_verdicts(driver: Driver, fake: FakeAnthropicServer) -> None:
    """A human asks for a revision, then approves: both signals, with their payloads, are in
    ``ecl logs`` (the trace read from the records) between the verdicts, on both engines."""
    fake.responder = responder([PASS])
    wid = unique("signals", driver)
    args = ["run", "critique-revise", "--topic", "Rust", "--id", wid, "--require-approval", "--format", "json"]
    args += ["--engine", driver.engine] + (["--llm", "anthropic"] if driver.engine == "embedded" else [])
    proc = driver.start(*args)
    try:
        waiting = "SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_revision'"
        driver.ecl.wait_for(waiting, wid)
        revise = driver.run("signal", wid, "revise", "--feedback", "shorter", "--engine", driver.engine)
        assert revise.returncode == 0, revise.stderr
        # The revision round is over once its critique is recorded; then it waits on ``approval#2``.
        critiqued = "SELECT 1 FROM step_executions WHERE workflow_id = ? AND step_id = 'critique' AND iteration = 1"
        driver.ecl.wait_for(critiqued + " AND state = 'completed'", wid)
        driver.ecl.wait_for(waiting, wid)
        approve = driver.run("signal", wid, "approve", "--engine", driver.engine)
        assert approve.returncode == 0, approve.stderr
        out, err = proc.communicate(timeout=START_TIMEOUT)
        assert proc.returncode == 0, err
        assert json.loads(out)["state"] == "completed"
    finally:
        stop(proc)
    picked = {
        "verdict": lambda e: (e["step_id"], e["decision"], e["feedback"]),
        "revision": lambda e: (e["round"], e["feedback"]),
        "signal": lambda e: (e["name"], e["payload"]),
        "state": lambda e: (e["state"],),
        "waiting": lambda e: (e.get("state") or e["waiting"],),
        "waited": lambda e: (e.get("state") or e["waiting"],),
    }
    logged = driver.ecl.json("logs", wid)
    decisions = [(e["kind"], *picked[e["kind"]](e)) for e in logged if e["kind"] in picked]
    # The state changes and waits are in order with them: each wait for the human begins
    # after a verdict and is over (``waited``) when the signal resumed the run.
    started = [("state", "pending")] if driver.engine == "restate" else []
    assert decisions == [
        *started,
        ("state", "running"),
        ("verdict", "critique", "pass", None),
        ("waiting", "waiting_for_revision"),
        ("signal", "approval", {"decision": "revise", "feedback": "shorter"}),
        ("waited", "waiting_for_revision"),
        ("state", "running"),
        ("revision", 1, "shorter"),
        ("verdict", "critique", "pass", None),
        ("waiting", "waiting_for_revision"),
        ("signal", "approval#2", {"decision": "approve", "feedback": None}),
        ("waited", "waiting_for_revision"),
        ("state", "running"),
        ("state", "completed"),
    ], logged
    waited = [e for e in logged if e["kind"] == "waited"]
    assert all(e["seconds"] >= 0 and e["text"].startswith("waited ") for e in waited), waited
    assert [e["time"] for e in logged] == sorted(e["time"] for e in logged)
    # Recorded once each (a replayed signal handler inserts nothing again).
    rows = driver.ecl.query("SELECT name FROM promises WHERE workflow_id = ? ORDER BY name", wid)
    assert rows == [("approval",), ("approval#2",)]


def test_cancel(driver: Driver, fake: FakeAnthropicServer) -> None:
    fake.responder = responder([PASS])
    wid = unique("cancel", driver)
    args = ["run", "critique-revise", "--topic", "Rust", "--id", wid, "--require-approval", "--detach"]
    args += ["--engine", driver.engine] + (["--llm", "anthropic"] if driver.engine == "embedded" else [])
    assert driver.run(*args).returncode == 0
    if driver.engine == "restate":
        driver.ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_revision'", wid)
    cancelled = driver.run("cancel", wid, "--engine", driver.engine)
    assert cancelled.returncode == 0, cancelled.stderr
    assert driver.ecl.run("status", wid).returncode == 11
    # The cancellation is a recorded state change, and the trace ends with it.
    changes = driver.ecl.query("SELECT data FROM workflow_events WHERE workflow_id = ? AND kind = 'state'", wid)
    last = changes[-1][0]
    assert (json.loads(last) if isinstance(last, str) else last) == {"state": "cancelled"}, changes
    assert driver.ecl.json("logs", wid)[-1]["kind"] == "cancelled"


def test_status_of_an_unknown_workflow(driver: Driver) -> None:
    done = driver.run("signal", "no-such-workflow", "approve", "--engine", driver.engine)
    assert done.returncode == 3


# ---------------------------------------------------------------- both forms of Critique-Revise


def journal_names(driver: Driver, wid: str) -> list[str]:
    """The names in the workflow's journal, in order (the engine's own journal)."""
    if driver.engine == "embedded":
        return [
            name
            for (name,) in driver.ecl.query("SELECT name FROM journal_entries WHERE workflow_id = ? ORDER BY seq", wid)
        ]
    admin = driver.env["ECL_RESTATE__ADMIN_URL"]

    def query(sql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = httpx.post(
            f"{admin}/query", json={"query": sql}, headers={"accept": "application/json"}, timeout=10
        ).json()["rows"]
        return rows

    (invocation,) = query(
        f"SELECT id FROM sys_invocation WHERE target_service_key = '{wid}' AND target_handler_name = 'run'"
    )
    rows = query(f"SELECT name FROM sys_journal WHERE id = '{invocation['id']}' AND name != '' ORDER BY index")
    return [row["name"] for row in rows]


def _same_ids(value: Any) -> Any:
    """``value`` (JSON, or a JSON string) with every ``artifact_id`` the same: each run stores its own."""
    if isinstance(value, str) and value[:1] in "{[":
        value = json.loads(value)
    if isinstance(value, dict):
        return {k: "<id>" if k == "artifact_id" and v else _same_ids(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_same_ids(v) for v in value]
    return value


def records(driver: Driver, wid: str) -> dict[str, Any]:
    """What ECL recorded of a run, without ids and times."""
    steps = driver.ecl.query(
        "SELECT step_id, iteration, attempt, state, input, output, error, tokens_used FROM step_executions "
        "WHERE workflow_id = ? ORDER BY started_at, iteration",
        wid,
    )
    calls = driver.ecl.query(
        "SELECT provider, model, input_tokens, output_tokens, outcome, cost_usd FROM llm_calls "
        "WHERE workflow_id = ? ORDER BY created_at",
        wid,
    )
    (row,) = driver.ecl.query("SELECT state, revision_count, error FROM workflows WHERE id = ?", wid)
    return {
        "steps": _same_ids(steps),
        "calls": calls,
        "workflow": _same_ids(row),
        "journal": journal_names(driver, wid),
    }


@pytest.mark.timeout(1200)  # four runs of up to eight LLM calls each, on a busy machine
@pytest.mark.parametrize("critiques", [[REVISE, PASS], [REVISE]], ids=["revise-then-pass", "max-revisions"])
def test_both_forms_give_the_same_outputs_records_and_journal(
    driver: Driver, fake: FakeAnthropicServer, critiques: list[str]
) -> None:
    """critique-revise (the graph) and critique-revise-py (code-first) on the same replies."""
    seen: dict[str, Any] = {}
    for definition in ("critique-revise", "critique-revise-py"):
        fake.responder = responder(critiques)
        fake.cached_prefixes.clear()  # each form starts from a cold prompt cache (same tokens, same cost)
        wid = unique(definition, driver)
        done = driver.workflow(wid, definition=definition, timeout=300)
        assert done.returncode in (0, 10), done.stderr
        result = result_of(done)
        seen[definition] = {
            "exit": done.returncode,
            "result": _same_ids(
                {k: result[k] for k in ("state", "outputs", "revisions", "tokens", "cost_usd", "error")}
            ),
            "steps": [s["step_id"] for s in result["steps"]],
            **records(driver, wid),
        }
    graph, code = seen["critique-revise"], seen["critique-revise-py"]
    assert code == graph
    names = graph["journal"]
    assert [n for n in names if n.startswith("step:")][:4] == [
        "step:generate",
        "step:critique",
        "step:revise:1",
        "step:critique:1",
    ]


# ---------------------------------------------------------------- Restate durability


def test_restate_crash_of_the_endpoint_never_repeats_generate(
    stack: RestateStack, fake: FakeAnthropicServer, base: Ecl
) -> None:
    fake.responder = responder([PASS])
    wid = f"crash-restate-{time.monotonic_ns() % 10**9}"
    generates = fake.count(lambda r: is_generate(r))
    hold = fake.hold_next(lambda r: is_critique(r) and "draft 0" in r.text)
    submit = base.run(
        "run", "critique-revise", "--topic", "Rust", "--id", wid, "--engine", "restate", "--detach", **stack.env()
    )
    assert submit.returncode == 0, submit.stderr
    hold.wait_arrived(START_TIMEOUT)
    assert stack.endpoint is not None
    kill(stack.endpoint)
    hold.release()
    stack.start_endpoint()
    done = base.run(
        "run",
        "critique-revise",
        "--topic",
        "Rust",
        "--id",
        wid,
        "--engine",
        "restate",
        "--format",
        "json",
        **stack.env(),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    assert fake.count(is_generate) - generates == 1
    invocations = httpx.post(
        f"{stack.server.admin_url}/query",
        json={"query": f"SELECT status FROM sys_invocation WHERE target_service_key = '{wid}'"},
        headers={"accept": "application/json"},
        timeout=10,
    ).json()["rows"]
    assert {"status": "completed"} in invocations
    # The records tell what happened: the attempt the crash cut short is `interrupted` (not
    # `running` for ever) and its LLM request, sent and billed, has a row.
    steps = base.query("SELECT step_id, state FROM step_executions WHERE workflow_id = ? ORDER BY started_at", wid)
    assert steps == [
        ("generate", "completed"),
        ("critique", "interrupted"),
        ("critique", "completed"),
        ("final", "completed"),
    ]
    calls = base.query("SELECT outcome FROM llm_calls WHERE workflow_id = ? ORDER BY created_at", wid)
    assert calls == [("ok",), ("interrupted",), ("ok",)]


def test_restate_server_restart_while_waiting_on_a_promise(
    stack: RestateStack, fake: FakeAnthropicServer, base: Ecl
) -> None:
    fake.responder = responder([PASS])
    wid = f"restart-{time.monotonic_ns() % 10**9}"
    submit = base.run(
        "run", "critique-revise", "--topic", "Rust", "--id", wid, "--engine", "restate", "--require-approval",
        "--detach", **stack.env(),
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    base.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_revision'", wid)
    calls = fake.count()
    stack.server.stop()
    stack.server.start(timeout=START_TIMEOUT)
    assert base.run("signal", wid, "approve", "--engine", "restate", **stack.env()).returncode == 0
    done = base.run(
        "run", "critique-revise", "--topic", "Rust", "--id", wid, "--engine", "restate", "--require-approval",
        "--format", "json", **stack.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    assert fake.count() == calls  # nothing was recomputed


def test_restate_signal_resolves_its_promise_when_its_record_cannot_be_written(
    stack: RestateStack, fake: FakeAnthropicServer, base: Ecl
) -> None:
    """The ``promises`` row is an observation: while it cannot be written (its table is gone),
    the ``signal`` handler gives it up after ``SIGNAL_RECORD_RETRY``'s attempts and the run goes on."""
    fake.responder = responder([PASS])
    wid = f"unrecorded-{time.monotonic_ns() % 10**9}"
    submit = base.run(
        "run", "critique-revise", "--topic", "Rust", "--id", wid, "--engine", "restate", "--require-approval",
        "--detach", **stack.env(),
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr
    base.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_revision'", wid)
    base.query("ALTER TABLE promises RENAME TO promises_away")
    try:
        signalled = base.run("signal", wid, "approve", "--engine", "restate", **stack.env())
        assert signalled.returncode == 0, signalled.stderr
        base.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'completed'", wid)
    finally:
        base.query("ALTER TABLE promises_away RENAME TO promises")
    assert base.query("SELECT name FROM promises WHERE workflow_id = ?", wid) == []
    assert [e for e in base.json("logs", wid) if e["kind"] == "signal"] == []


def test_restate_data_folder_is_the_tests_own(stack: RestateStack, base: Ecl) -> None:
    assert Path(stack.server.data_dir).is_relative_to(base.tmp)


# ---------------------------------------------------------------- the HTTP API on Restate


def _wait_state(client: httpx.Client, wid: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/workflows/{wid}").json()
        if body.get("state") in states:
            return body
        time.sleep(0.1)
    raise TimeoutError(states)


def test_http_api_drives_workflows_on_restate(stack: RestateStack, fake: FakeAnthropicServer, base: Ecl) -> None:
    """``ecl server start --engine restate --api``: submit, approve, cancel and read through the
    API while the workflows run on the Restate server's ECL endpoint."""
    fake.responder = responder([PASS])
    port = free_port()
    api = base.start("server", "start", "--engine", "restate", "--api", "--port", str(port), **stack.env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(answers(f"{url}/health/ready"), api, "the API on Restate")
        with httpx.Client(base_url=url, timeout=30) as client:
            ready = client.get("/health/ready").json()
            assert ready["checks"] == {"database": "ok", "engine": "ok"}
            wid = f"api-restate-{time.monotonic_ns() % 10**9}"
            body = {"definition_id": "critique-revise", "input": {"topic": "Rust", "require_approval": True}}
            created = client.post("/workflows", json={**body, "workflow_id": wid})
            assert created.status_code == 201, created.text
            assert client.post("/workflows", json={**body, "workflow_id": wid}).status_code == 200  # idempotent
            changed = {**body, "input": {"topic": "Go"}, "workflow_id": wid}
            assert client.post("/workflows", json=changed).json()["error"]["code"] == "CONFLICT"
            _wait_state(client, wid, {"waiting_for_revision"})
            assert client.post(f"/workflows/{wid}/signal", json={"decision": "approve"}).status_code == 202
            done = _wait_state(client, wid, {"completed"})
            assert done["output"]["outputs"]["final"]["text"] == "draft 0"
            assert [s["step_id"] for s in client.get(f"/workflows/{wid}/steps").json()][:2] == ["generate", "critique"]
            assert client.get(f"/workflows/{wid}/llm-calls").json()["calls"] == 2
            ended = client.post(f"/workflows/{wid}/signal", json={"decision": "approve"})
            assert ended.status_code == 409, ended.text  # an ended workflow takes no signals
            assert "takes no signals" in ended.json()["error"]["message"]
            bad = client.post("/workflows", json={"definition_id": "critique-revise", "input": {"topic": ""}})
            assert bad.status_code == 400, bad.text
            assert bad.json()["error"]["details"]["errors"][0]["field"] == "input.topic"

            other = f"api-restate-cancel-{time.monotonic_ns() % 10**9}"
            assert client.post("/workflows", json={**body, "workflow_id": other}).status_code == 201
            _wait_state(client, other, {"waiting_for_revision"})
            assert client.delete(f"/workflows/{other}").json()["state"] == "cancelled"
            assert client.get("/workflows/nope").json()["error"]["code"] == "WORKFLOW_NOT_FOUND"

            # The dashboard drives the same engine (no key configured here: it is open).
            third = f"api-restate-ui-{time.monotonic_ns() % 10**9}"
            assert client.post("/workflows", json={**body, "workflow_id": third}).status_code == 201
            _wait_state(client, third, {"waiting_for_revision"})
            page = client.get("/ui")
            assert f'id="run-{third}"' in page.text
            found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
            assert found is not None
            form = {"csrf_token": found.group(1), "confirmed": "yes", "back": "/ui"}
            assert client.post(f"/ui/runs/{third}/approve", data=form).status_code == 303
            _wait_state(client, third, {"completed"})
            started = client.post("/ui/definitions/critique-revise/start", data={**form, "topic": "From the form"})
            assert started.status_code == 303, started.text
            _wait_state(client, started.headers["location"].rsplit("/", 1)[1], {"completed"})
    finally:
        stop(api)


@pytest.mark.timeout(900)
def test_budget_wait_survives_sigkill_then_a_top_up_completes_the_run(
    driver: Driver, fake: FakeAnthropicServer, request: pytest.FixtureRequest
) -> None:
    _budget_wait_survives_sigkill(driver, fake, request, "critique-revise")


@pytest.mark.timeout(900)
def test_a_code_first_budget_wait_survives_sigkill_then_a_top_up_completes_the_run(
    driver: Driver, fake: FakeAnthropicServer, request: pytest.FixtureRequest
) -> None:
    """The same for ``critique-revise-py``: code-first workflows share the graph's budget."""
    _budget_wait_survives_sigkill(driver, fake, request, "critique-revise-py")


def _budget_wait_survives_sigkill(
    driver: Driver, fake: FakeAnthropicServer, request: pytest.FixtureRequest, definition: str
) -> None:
    fake.responder = responder([PASS])
    wid = unique("budget", driver)
    before = fake.count()
    # Enough tokens for generate's worst case (input + max_tokens), not for critique's on top.
    data = json.dumps({"topic": "Rust", "budget_tokens": 1150})
    args = ["run", definition, "--input", data, "--id", wid, "--format", "json", "--engine", driver.engine]
    args += ["--llm", "anthropic"] if driver.engine == "embedded" else []
    proc = driver.start(*args)
    try:
        driver.ecl.wait_for("SELECT 1 FROM workflows WHERE id = ? AND state = 'waiting_for_budget'", wid, timeout=300)
        assert fake.count() - before == 1  # generate went out; the refused critique never did
        waiting = driver.ecl.json("status", wid)["workflow"]["waiting"]  # ecl status shows the refusal
        assert waiting["reason"] == "budget" and waiting["budget_tokens"] == 1150, waiting
        assert waiting["step_id"] == "critique" and waiting["call"]["max_tokens"] > 0, waiting
    finally:
        kill(proc)  # SIGKILL: on the embedded engine, the process that ran the workflow
    if driver.engine == "restate":
        stack: RestateStack = request.getfixturevalue("stack")
        assert stack.endpoint is not None
        kill(stack.endpoint)  # the process that ran it on Restate
        stack.start_endpoint()
    signalled = driver.run("signal", wid, "budget", "--add-tokens", "5000", "--engine", driver.engine, timeout=300)
    assert signalled.returncode == 0, signalled.stderr
    if driver.engine == "embedded":
        done = driver.run("resume", wid, "--llm", "anthropic", "--format", "json", timeout=300)
    else:
        done = driver.run(*args, timeout=300)  # re-attach (same id and input) and follow it to the end
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert result["state"] == "completed"
    assert fake.count() - before == 2  # generate once, critique once: nothing repeated
    recorded = driver.ecl.query("SELECT cost_usd FROM llm_calls WHERE workflow_id = ?", wid)
    assert len(recorded) == 2
    assert Decimal(result["cost_usd"]) == sum((Decimal(str(r[0])) for r in recorded), Decimal(0)) > 0
    shown = driver.ecl.json("status", wid)["workflow"]
    assert (shown["state"], shown["waiting"], shown["error"]) == ("completed", None, None)  # the refusal is gone


def test_codebase_migration_runs_on_both_engines(driver: Driver, fake: FakeAnthropicServer) -> None:
    from tests.e2e.test_analyzer_run import SAMPLE, kind, respond

    fake.responder = respond
    before = len(fake.requests)
    wid = unique("analyzer", driver)
    bundle = {"code_path": str(SAMPLE), "target": "rust", "skip_assessment": True, "options": {"chunk_tokens": 1000}}
    args = ["run", "codebase-migration", "--input", json.dumps(bundle), "--id", wid, "--format", "json"]
    args += ["--engine", driver.engine] + (["--llm", "anthropic"] if driver.engine == "embedded" else [])
    done = driver.run(*args, timeout=240)
    assert done.returncode == 0, done.stderr
    result = result_of(done)
    assert result["state"] == "completed"
    delivery = result["outputs"]["package"]["files"]
    assert {"index.md", "grade-report.md", "architecture.md", "plan.md", "slides.html", "deliverables.zip"} <= set(
        delivery
    )
    kinds = [kind(r) for r in fake.requests[before:]]
    chunks = kinds.count("chunk")
    assert chunks > 3
    assert kinds.count("architecture") == 2  # the read_file round trip
    status = driver.ecl.json("status", wid)
    completed = [s["step_id"] for s in status["steps"] if s["state"] == "completed"]
    assert completed.count("summarize-chunk") == chunks
    assert {"intake", "grade-report", "project-plan", "package"} <= set(completed)
