"""The Restate adapter against a real ``restate-server``: durable context, service, engine.

The endpoint runs on a thread of this process (so the test can count executions); Restate
is told to suspend idle invocations after one second, so waiting on a promise or a timer
ends the attempt and the rest of the workflow runs as a *replay* of its journal.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from ecl.core import DurableContext, RetryPolicy, StateChange, WorkflowResult, WorkflowState
from ecl.core.errors import (
    ConflictError,
    EngineError,
    InputValidationError,
    LlmError,
    NonDeterminismError,
    NotFoundError,
    StepError,
    StepTimeoutError,
    StepValidationError,
)
from ecl.engines.restate import (
    SERVICE_NAME,
    EndpointThread,
    RestateEngine,
    RestateServer,
    endpoint_app,
    register_deployment,
)
from ecl.llm.mock import MockLlmProvider, scripted_workflow_responder
from ecl.llm.provider import CompletionRequest
from ecl.observability import configure_content, configure_logging, configure_tracing
from ecl.store.database import create_engine, upgrade
from ecl.store.recorder import SqlRecorder
from ecl.store.repositories import WorkflowRepository
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, WorkflowRecorder, builtin_steps
from tests.e2e.helpers import START_TIMEOUT

pytestmark = pytest.mark.restate


class Flows:
    """Definitions named ``t-*`` are the small workflows below; others go to the real orchestrator."""

    def __init__(self, real: WorkflowOrchestrator) -> None:
        self.real = real
        self.calls: Counter[str] = Counter()
        self.seen: dict[str, list[Any]] = defaultdict(list)
        self.renamed: set[str] = set()

    def step(self, wid: str, name: str, fn: Callable[[int], Any]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            self.calls[f"{wid}:{name}"] += 1
            return fn(self.calls[f"{wid}:{name}"])

        return run

    async def run(
        self, ctx: DurableContext, definition_id: str, input: dict[str, Any], *, recorder: WorkflowRecorder
    ) -> WorkflowResult:
        if not definition_id.startswith("t-"):
            return await self.real.run(ctx, definition_id, input, recorder=recorder)
        flow = getattr(self, "flow_" + definition_id[2:].replace("-", "_"))
        wid = ctx.workflow_id
        await recorder.workflow_state(StateChange(wid, WorkflowState.RUNNING))
        try:
            outputs = await flow(ctx, wid, input)
        except StepError as err:
            return WorkflowResult(workflow_id=wid, definition_id=definition_id, state=WorkflowState.FAILED,
                                  error=err.to_dict())  # fmt: skip
        return WorkflowResult(workflow_id=wid, definition_id=definition_id, state=WorkflowState.COMPLETED,
                              outputs=outputs)  # fmt: skip

    async def flow_steps(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        total = 0
        for i in range(int(data.get("n", 3))):
            total += await ctx.run(f"s{i}", self.step(wid, f"s{i}", lambda _n, i=i: i))
        await ctx.set("total", total)
        return {"total": total, "got": await ctx.get("total"), "missing": await ctx.get("nothing")}

    async def flow_replay(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        await ctx.run("a", self.step(wid, "a", lambda n: n))
        now, uid = await ctx.now(), await ctx.uuid()
        self.seen[wid].append((now.isoformat(), uid))
        payload = await ctx.promise("go")
        await ctx.run("b", self.step(wid, "b", lambda n: n))
        return {"payload": payload, "now": now.isoformat(), "uuid": uid}

    async def flow_fails(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        def bad(_n: int) -> Any:
            raise StepValidationError("no title", step_id="bad", errors=[{"field": "title", "message": "missing"}])

        try:
            await ctx.run("bad", self.step(wid, "bad", bad))
        except StepValidationError as err:
            self.seen[wid].append(err.to_dict())
        await ctx.promise("go")
        return {"errors": len(self.seen[wid])}

    async def flow_retry(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        def flaky(n: int) -> Any:
            if n <= int(data["fail"]):
                # A step's own retryable failure (an LlmError is never retried here: its
                # retries belong to the LLM layer).
                raise StepTimeoutError("too slow", timeout_seconds=1.5, step_id="flaky")
            return n

        policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), max_delay=timedelta(seconds=0.1))
        return {"attempt": await ctx.run("flaky", self.step(wid, "flaky", flaky), retry=policy)}

    async def flow_llm(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        def provider_down(_n: int) -> Any:
            raise LlmError("HTTP 500", kind="server", status_code=500, retryable=True, step_id="llm", attempts=3)

        policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), max_delay=timedelta(seconds=0.1))
        return {"never": await ctx.run("llm", self.step(wid, "llm", provider_down), retry=policy)}

    async def flow_infra(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        def hiccup(n: int) -> Any:
            if n == 1:
                raise ConnectionResetError("database connection dropped")
            return n

        return {"attempt": await ctx.run("hiccup", self.step(wid, "hiccup", hiccup))}

    async def flow_rounds(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        await ctx.set("revision_count", 2)
        first = await ctx.promise("approval")
        second = await ctx.promise("approval#2")
        return {"first": first, "second": second}

    async def flow_nondet(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        name = "a2" if wid in self.renamed else "a"  # "the code changed" between two attempts
        await ctx.run(name, self.step(wid, name, lambda n: n))
        await ctx.promise("go")
        return {}

    async def flow_sleep(self, ctx: DurableContext, wid: str, data: dict[str, Any]) -> dict[str, Any]:
        before = await ctx.now()
        await ctx.sleep(timedelta(seconds=1.3))
        return {"slept": ((await ctx.now()) - before).total_seconds()}


def _responder(request: CompletionRequest) -> Any:
    """The scripted replies, each logged by a module that binds nothing itself."""
    structlog.get_logger("test.mock").debug("mock llm asked")
    return scripted_workflow_responder(request)


@dataclass
class Stack:
    server: RestateServer
    endpoint: EndpointThread
    flows: Flows
    llm: MockLlmProvider
    url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("restate-adapter")
    url = f"sqlite:///{tmp / 'ecl.db'}"
    upgrade(url)
    server = RestateServer(
        data_dir=tmp / "restate",
        partitions=4,
        env={"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "1s"},
    )
    try:
        server.start(timeout=START_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    llm = MockLlmProvider(responder=_responder)
    flows = Flows(WorkflowOrchestrator(DefinitionRegistry.with_builtins(), builtin_steps(), llm))
    recorders: list[SqlRecorder] = []

    def app() -> Any:
        recorders.append(SqlRecorder(create_engine(url)))
        return endpoint_app(flows, recorders[-1])

    async def cleanup() -> None:
        for recorder in recorders:
            await recorder.workflows.db.dispose()

    endpoint = EndpointThread(app, cleanup=cleanup).start()
    try:
        asyncio.run(register_deployment(server.admin_url, endpoint.url))
        yield Stack(server, endpoint, flows, llm, url)
    finally:
        endpoint.stop()
        server.stop()


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[RestateEngine]:
    db = create_engine(stack.url)
    eng = RestateEngine(
        stack.server.ingress_url, stack.server.admin_url, WorkflowRepository(db), poll_seconds=0.1, attach_seconds=1.5
    )
    yield eng
    await eng.close()
    await db.dispose()


def new_id(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


async def wait_for_status(engine: RestateEngine, wid: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        row = await engine.invocation(wid)
        seen = row["status"] if row else None
        if seen == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"invocation of {wid} is {seen}, not {status}")


async def test_steps_state_and_records(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-steps", {"n": 4}, new_id("steps"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs == {"total": 6, "got": 6, "missing": None}
    assert [stack.flows.calls[f"{wid}:s{i}"] for i in range(4)] == [1, 1, 1, 1]
    record = await engine.workflows.get(wid)
    assert record.state is WorkflowState.COMPLETED
    assert record.output["outputs"] == result.outputs  # the whole result, as on the embedded engine
    assert record.completed_at is not None


async def test_replay_never_reruns_a_step_and_sees_the_same_time_and_uuid(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-replay", {}, new_id("replay"))
    await wait_for_status(engine, wid, "suspended")
    await engine.signal(wid, "go", {"x": 1})
    result = await engine.result(wid)
    assert result.outputs["payload"] == {"x": 1}
    assert stack.flows.calls[f"{wid}:a"] == 1
    assert stack.flows.calls[f"{wid}:b"] == 1
    seen = stack.flows.seen[wid]
    assert len(seen) >= 2, "the workflow was not replayed"
    assert all(s == seen[0] for s in seen)


async def test_a_final_step_error_is_journaled_and_raised_again_with_its_type(
    engine: RestateEngine, stack: Stack
) -> None:
    wid = await engine.submit("t-fails", {}, new_id("fails"))
    await wait_for_status(engine, wid, "suspended")
    await engine.signal(wid, "go", None)
    result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED
    assert stack.flows.calls[f"{wid}:bad"] == 1
    errors = stack.flows.seen[wid]
    assert len(errors) >= 2
    assert all(e == errors[0] for e in errors)
    assert errors[0]["type"] == "StepValidationError"
    assert errors[0]["errors"] == [{"field": "title", "message": "missing"}]


async def test_retry_policy_becomes_restate_run_retries(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-retry", {"fail": 2}, new_id("retry"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs == {"attempt": 3}
    assert stack.flows.calls[f"{wid}:flaky"] == 3


async def test_exhausted_retries_raise_the_original_error_type(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-retry", {"fail": 99}, new_id("exhaust"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.FAILED
    assert stack.flows.calls[f"{wid}:flaky"] == 3
    assert result.error is not None
    assert result.error["type"] == "StepTimeoutError"
    assert (result.error["timeout_seconds"], result.error["step_id"]) == (1.5, "flaky")


async def test_an_llm_error_is_not_retried_again_by_the_run_policy(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-llm", {}, new_id("llm"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.FAILED
    assert stack.flows.calls[f"{wid}:llm"] == 1  # the LLM layer spent the call's one retry budget
    assert result.error is not None
    assert (result.error["type"], result.error["attempts"]) == ("LlmError", 3)


async def test_an_infrastructure_failure_retries_the_invocation(engine: RestateEngine, stack: Stack) -> None:
    wid = await engine.submit("t-infra", {}, new_id("infra"))
    result = await engine.result(wid)
    assert result.outputs == {"attempt": 2}
    assert stack.flows.calls[f"{wid}:hiccup"] == 2


async def test_signal_rounds_status_and_durable_state(engine: RestateEngine) -> None:
    wid = await engine.submit("t-rounds", {}, new_id("rounds"))
    await wait_for_status(engine, wid, "suspended")
    status = await engine.status(wid)
    assert status["state"] == "running"
    assert status["invocation"]["status"] == "suspended"
    assert status["durable_state"]["revision_count"] == 2
    await engine.signal(wid, "approval", {"decision": "revise", "feedback": "more"})
    await engine.signal(wid, "approval", {"decision": "approve"})
    result = await engine.result(wid)
    assert result.outputs == {"first": {"decision": "revise", "feedback": "more"}, "second": {"decision": "approve"}}


async def test_durable_sleep_survives_suspension(engine: RestateEngine) -> None:
    wid = await engine.submit("t-sleep", {}, new_id("sleep"))
    result = await engine.result(wid)
    assert result.outputs["slept"] >= 1.3


async def test_cancel_while_waiting_on_a_promise(engine: RestateEngine) -> None:
    wid = await engine.submit("t-rounds", {}, new_id("cancel"))
    await wait_for_status(engine, wid, "suspended")
    await engine.cancel(wid)
    result = await engine.result(wid)
    assert result.state is WorkflowState.CANCELLED
    await wait_for_status(engine, wid, "completed")
    invocation = await engine.invocation(wid)
    assert invocation is not None
    assert "409" in str(invocation["completion_failure"])
    record = await engine.workflows.get(wid)
    assert record.state is WorkflowState.CANCELLED
    assert record.error["type"] == "WorkflowCancelled"


async def test_cancel_of_an_ended_workflow_changes_nothing(engine: RestateEngine) -> None:
    wid = await engine.submit("t-steps", {"n": 1}, new_id("ended"))
    await engine.result(wid)
    await engine.cancel(wid)
    assert (await engine.workflows.get(wid)).state is WorkflowState.COMPLETED
    assert (await engine.result(wid)).state is WorkflowState.COMPLETED


async def test_an_ended_workflow_takes_no_signals(engine: RestateEngine) -> None:
    done = await engine.submit("t-steps", {"n": 1}, new_id("nosignal"))
    await engine.result(done)
    with pytest.raises(ConflictError, match=r"has ended \(completed\); it takes no signals"):
        await engine.signal(done, "approval", {"decision": "approve"})
    cancelled = await engine.submit("t-rounds", {}, new_id("nosignal-cancelled"))
    await wait_for_status(engine, cancelled, "suspended")
    await engine.cancel(cancelled)
    with pytest.raises(ConflictError, match=r"has ended \(cancelled\); it takes no signals"):
        await engine.signal(cancelled, "approval", {"decision": "approve"})


async def test_input_is_validated_at_submission(stack: Stack) -> None:
    db = create_engine(stack.url)
    eng = RestateEngine(
        stack.server.ingress_url,
        stack.server.admin_url,
        WorkflowRepository(db),
        known_definitions=DefinitionRegistry.with_builtins().get,
    )
    try:
        wid = new_id("bad-input")
        with pytest.raises(InputValidationError, match=r"input\.topic: String should have at least 1 character"):
            await eng.submit("critique-revise", {"topic": ""}, wid)
        with pytest.raises(InputValidationError, match=r"input\.tpoic: Extra inputs are not permitted"):
            await eng.submit("critique-revise", {"topic": "Rust", "tpoic": "Rust"}, wid)
        with pytest.raises(NotFoundError):
            await eng.submit("no-such-definition", {}, wid)
        assert await eng.workflows.find(wid) is None  # nothing stored
        assert await eng.invocation(wid) is None  # nothing started
    finally:
        await eng.close()
        await db.dispose()


async def test_submit_is_idempotent_on_the_workflow_id(engine: RestateEngine, stack: Stack) -> None:
    wid = new_id("idem")
    assert await engine.submit("t-steps", {"n": 2}, wid) == wid
    assert await engine.submit("t-steps", {"n": 2}, wid) == wid
    assert (await engine.result(wid)).outputs["total"] == 1
    assert await engine.submit("t-steps", {"n": 2}, wid) == wid
    assert stack.flows.calls[f"{wid}:s0"] == 1
    with pytest.raises(ConflictError):
        await engine.submit("t-steps", {"n": 3}, wid)


async def test_run_is_one_call_that_runs_a_workflow_once(engine: RestateEngine, stack: Stack) -> None:
    wid = new_id("run")
    heard: list[str] = []
    first = await engine.run("t-steps", {"n": 3}, wid, on_submitted=heard.append)
    assert (first.state, first.outputs["total"], heard) == (WorkflowState.COMPLETED, 3, [wid])
    # Again, and twice at once: Restate answers "already invoked", the run is attached to.
    again = await asyncio.gather(*(engine.run("t-steps", {"n": 3}, wid) for _ in range(2)))
    assert [r.outputs for r in again] == [first.outputs] * 2
    assert [stack.flows.calls[f"{wid}:s{i}"] for i in range(3)] == [1, 1, 1]
    assert (await engine.workflows.get(wid)).state is WorkflowState.COMPLETED
    with pytest.raises(ConflictError):
        await engine.run("t-steps", {"n": 4}, wid)
    fresh = await engine.run("t-steps", {"n": 1})  # a new id, made here
    assert fresh.state is WorkflowState.COMPLETED
    assert (await engine.workflows.get(fresh.workflow_id)).state is WorkflowState.COMPLETED


async def test_run_outlasting_its_call_waits_for_a_signal_or_a_cancellation(engine: RestateEngine) -> None:
    # attach_seconds is 1.5 s here: the call gives up, the workflow is waited for as result() does.
    wid = new_id("run-signal")
    running = asyncio.create_task(engine.run("t-replay", {}, wid))
    await wait_for_status(engine, wid, "suspended")
    await asyncio.sleep(2)
    await engine.signal(wid, "go", {"x": 2})
    assert (await running).outputs["payload"] == {"x": 2}
    wid = new_id("run-cancel")
    running = asyncio.create_task(engine.run("t-rounds", {}, wid))
    await wait_for_status(engine, wid, "suspended")
    await engine.cancel(wid)
    assert (await running).state is WorkflowState.CANCELLED


async def test_run_of_a_workflow_restate_refuses_raises(engine: RestateEngine, stack: Stack) -> None:
    url = engine.ingress
    engine.ingress = f"{url}/no-such-prefix"  # Restate answers 404 without an invocation
    try:
        with pytest.raises(EngineError, match="Restate refused the workflow: HTTP 404"):
            await engine.run("t-steps", {"n": 1}, new_id("run-refused"))
    finally:
        engine.ingress = url


async def test_a_workflow_started_on_restate_directly_gets_its_row(engine: RestateEngine, stack: Stack) -> None:
    wid = new_id("direct")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.server.ingress_url}/{SERVICE_NAME}/{wid}/run", json={"definition_id": "t-steps", "input": {"n": 2}}
        )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "completed"
    record = await engine.workflows.get(wid)
    assert (record.definition_id, record.state) == ("t-steps", WorkflowState.COMPLETED)


async def test_unknown_definition_fails_the_workflow(engine: RestateEngine) -> None:
    wid = await engine.submit("no-such-definition", {}, new_id("unknown"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "NotFoundError"


async def test_signal_and_cancel_of_an_unknown_workflow(engine: RestateEngine) -> None:
    with pytest.raises(NotFoundError):
        await engine.signal("never-submitted", "approval", {"decision": "approve"})
    with pytest.raises(NotFoundError):
        await engine.cancel("never-submitted")


async def test_critique_revise_with_approval_records_each_step_once(engine: RestateEngine, stack: Stack) -> None:
    """The real orchestrator: replay after the approval wait writes no second step or LLM row."""
    requests_before = len(stack.llm.requests)
    wid = await engine.submit("critique-revise", {"topic": "Rust", "require_approval": True}, new_id("cr"))
    await wait_for_status(engine, wid, "suspended")
    assert (await engine.workflows.get(wid)).state is WorkflowState.WAITING_FOR_REVISION
    await engine.signal(wid, "approval", {"decision": "approve", "feedback": None})
    result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED, result.error
    assert len(stack.llm.requests) - requests_before == 2
    async with engine.workflows.db.connect() as conn:
        steps = (await conn.execute(text("SELECT step_id, state FROM step_executions WHERE workflow_id = :w"),
                                    {"w": wid})).all()  # fmt: skip
        calls = (await conn.execute(text("SELECT count(*) FROM llm_calls WHERE workflow_id = :w"), {"w": wid})).one()
    assert sorted(steps) == [("critique", "completed"), ("final", "completed"), ("generate", "completed")]
    assert calls[0] == 2
    record = await engine.workflows.get(wid)
    assert record.state is WorkflowState.COMPLETED
    assert record.output["outputs"]["final"]["text"].startswith("Draft.")


async def test_log_lines_of_a_run_carry_its_workflow_step_and_attempt(engine: RestateEngine) -> None:
    """Issue 14 item 3 on Restate: the handler binds the workflow, the tasks Restate starts for
    the steps' journaled runs inherit it, and the executor binds the step and attempt."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    wid = await engine.submit("critique-revise", {"topic": "logs"}, new_id("logs"))
    result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED, result.error
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    asked = [line for line in lines if line["event"] == "mock llm asked"]
    assert sorted((line["workflow_id"], line["step_id"], line["attempt"]) for line in asked) == [
        (wid, "critique", 1),
        (wid, "generate", 1),
    ]


async def test_journal_names_are_stable(engine: RestateEngine) -> None:
    """Journal entry names are compatibility data: a running workflow replays against them."""
    wid = await engine.submit("critique-revise", {"topic": "names"}, new_id("names"))
    await engine.result(wid)
    invocation = await engine.invocation_id(wid)
    response = await engine._http.post(
        f"{engine.admin}/query",
        json={"query": f"SELECT name FROM sys_journal WHERE id = '{invocation}' AND name != '' ORDER BY index"},
        headers={"accept": "application/json"},
    )
    names = [row["name"] for row in response.json()["rows"]]
    assert names[:2] == ["record:state:1", "step:generate"]
    assert "step:critique" in names
    assert names[-1] == "step:final"  # the final row is not journaled: a replay writes it again, unchanged


async def test_code_that_diverges_from_its_journal_is_reported_and_can_be_cancelled(
    engine: RestateEngine, stack: Stack
) -> None:
    wid = await engine.submit("t-nondet", {}, new_id("nondet"))
    await wait_for_status(engine, wid, "suspended")
    stack.flows.renamed.add(wid)
    await engine.signal(wid, "go", None)
    with pytest.raises(NonDeterminismError) as caught:
        await engine.result(wid)
    assert (caught.value.workflow_id, caught.value.expected, caught.value.actual) == (wid, "a", "a2")
    assert stack.flows.calls[f"{wid}:a2"] == 0  # nothing ran against the wrong journal
    await engine.cancel(wid)
    assert (await engine.result(wid)).state is WorkflowState.CANCELLED
    await wait_for_status(engine, wid, "completed")


async def test_a_run_on_restate_is_one_trace_across_its_attempts(engine: RestateEngine) -> None:
    """Issue 14 item 1 on Restate: the submission's trace context travels in the invocation's
    request (and the workflows row), so each attempt — the first, and the replay after the
    approval wait suspended it — is a run span in the same trace; replayed steps have none."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure_tracing(True, provider=provider)
    configure_content(True)  # the endpoint runs in this process: its calls keep their content
    try:
        wid = await engine.submit("critique-revise", {"topic": "Rust", "require_approval": True}, new_id("traced"))
        await wait_for_status(engine, wid, "suspended")
        sender = trace.NonRecordingSpan(
            trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        )
        with trace.use_span(sender):  # as an API request's traceparent makes it current
            await engine.signal(wid, "approval", {"decision": "approve", "feedback": None})
        result = await engine.result(wid)
    finally:
        configure_tracing(False)
        configure_content(False)
    assert result.state is WorkflowState.COMPLETED, result.error
    provider.force_flush()
    spans = [s for s in exporter.get_finished_spans() if s.context is not None]
    provider.shutdown()
    (submit,) = [s for s in spans if s.name == f"submit {wid}"]
    assert submit.context is not None
    trace_id = submit.context.trace_id
    record = await engine.workflows.get(wid)
    assert record.trace_context is not None
    assert record.trace_context.startswith(f"00-{trace_id:032x}-{submit.context.span_id:016x}-")

    runs = [s for s in spans if s.name == f"workflow {wid}"]
    assert len(runs) >= 2  # the attempt that suspended on the approval, the one that finished
    assert all(r.parent is not None and r.parent.span_id == submit.context.span_id for r in runs)
    run_ids = {r.context.span_id for r in runs if r.context is not None}
    steps = [s for s in spans if s.name.startswith("step ")]
    assert sorted(s.name for s in steps) == ["step critique", "step final", "step generate"]
    assert all(s.parent is not None and s.parent.span_id in run_ids for s in steps)
    chats = [s for s in spans if s.name.startswith("chat ")]
    step_ids = {s.context.span_id: s.name for s in steps if s.context is not None}
    assert sorted(step_ids[c.parent.span_id] for c in chats if c.parent is not None) == [
        "step critique",
        "step generate",
    ]
    for chat in chats:
        attributes = dict(chat.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "mock"
        assert isinstance(attributes["gen_ai.usage.output_tokens"], int)
    ours = [s for s in spans if wid in s.name and not s.name.startswith("signal ")]
    assert {s.context.trace_id for s in ours if s.context is not None} == {trace_id}
    assert {s.context.trace_id for s in steps + chats if s.context is not None} == {trace_id}
    # Content capture on Restate: the calls' rows keep the prompt and the reply.
    async with engine.workflows.db.connect() as conn:
        kept = (
            await conn.execute(text("SELECT prompt, reply FROM llm_calls WHERE workflow_id = :w"), {"w": wid})
        ).all()
    assert len(kept) == 2 and all(prompt and "[user]\n" in prompt and reply for prompt, reply in kept)
    # The signal: in the sender's trace, linked to the workflow's.
    (signal,) = [s for s in spans if s.name == f"signal approval {wid}"]
    assert signal.parent is not None and (signal.parent.trace_id, signal.parent.span_id) == (0x1234, 0x5678)
    assert [(link.context.trace_id, link.context.span_id) for link in signal.links] == [
        (trace_id, submit.context.span_id)
    ]
