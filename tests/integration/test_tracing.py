"""Tracing with OpenTelemetry (issue 14, item 1): the span tree of a Critique-Revise run with
one revision — workflow run → one span per step attempt → LLM call with the GenAI
semantic-convention attributes — and the run's ``trace_id`` in its log lines.

The embedded engine in this process, the real ``anthropic`` SDK against the fake server over
HTTP, spans captured by the SDK's in-memory exporter.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import ecl
from ecl.config import load_settings
from ecl.core import RetryPolicy, WorkflowState
from ecl.llm import LlmProvider, build_provider
from ecl.observability import configure_logging, configure_tracing, tracing_enabled
from ecl.observability.tracing import start_llm_span, step_span, workflow_span
from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import PASS, REVISE, responder

pytestmark = pytest.mark.timeout(300)

MODEL = "claude-sonnet-5-5"
FAST = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), max_delay=timedelta(milliseconds=50))


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    configure_tracing(True, provider=provider)
    try:
        yield spans
    finally:
        configure_tracing(False)
        provider.shutdown()


async def _run(tmp_path: Path, server: FakeAnthropicServer, workflow_id: str) -> ecl.WorkflowResult:
    llm: LlmProvider = build_provider("anthropic", model=MODEL, api_key="sk-test", base_url=server.url, retry=FAST)
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    try:
        async with ecl.open_engine(
            database_url=f"sqlite:///{tmp_path / 'ecl.db'}", llm=llm, settings=settings
        ) as engine:
            return await engine.run("critique-revise", {"topic": "traces"}, workflow_id=workflow_id)
    finally:
        await llm.close()  # type: ignore[attr-defined]


async def test_a_critique_revise_run_with_one_revision_is_one_trace_of_steps_and_llm_calls(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    with FakeAnthropicServer(responder=responder([REVISE, PASS])) as server:
        result = await _run(tmp_path, server, "wf-traced")
    assert result.state is WorkflowState.COMPLETED, result.error
    spans = exporter.get_finished_spans()

    (run,) = [s for s in spans if s.parent is None]
    assert run.name == "workflow wf-traced" and run.attributes == {"ecl.workflow.id": "wf-traced"}
    assert run.context is not None
    trace_id = run.context.trace_id
    assert {s.context.trace_id for s in spans if s.context is not None} == {trace_id}

    def children(parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda s: s.start_time or 0)

    steps = children(run)
    # generate, critique (revise), revise, critique (pass), final: one span per step attempt, in order.
    assert [(s.name, s.attributes and s.attributes["ecl.step.attempt"]) for s in steps] == [
        ("step generate", 1),
        ("step critique", 1),
        ("step revise", 1),
        ("step critique", 1),
        ("step final", 1),
    ], [s.name for s in spans]
    assert [s.attributes and s.attributes["ecl.step.iteration"] for s in steps][:4] == [0, 0, 1, 1]
    assert all(s.status.status_code is StatusCode.UNSET for s in steps)

    calls = [children(step) for step in steps]
    assert [len(c) for c in calls] == [1, 1, 1, 1, 0]  # the final step calls no model
    for (call,) in calls[:4]:
        assert call.name == f"chat {MODEL}" and call.kind is SpanKind.CLIENT
        attributes = dict(call.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.system"] == attributes["gen_ai.provider.name"] == "anthropic"
        assert attributes["gen_ai.request.model"] == MODEL
        assert attributes["gen_ai.response.model"] == MODEL
        assert isinstance(attributes["gen_ai.usage.input_tokens"], int) and attributes["gen_ai.usage.input_tokens"] > 0
        assert (
            isinstance(attributes["gen_ai.usage.output_tokens"], int) and attributes["gen_ai.usage.output_tokens"] > 0
        )
        # No prompt or completion content on the span.
        assert not any("prompt" in key or "completion" in key or "content" in key for key in attributes)
        assert run.start_time is not None and call.start_time is not None and call.start_time >= run.start_time

    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    attempts = [line for line in lines if line["event"] == "step attempt"]
    assert len(attempts) == 5
    assert {line.get("trace_id") for line in attempts} == {format(trace_id, "032x")}


def _failing_attempt() -> None:
    with step_span("generate", 1, 0):
        start_llm_span("anthropic", MODEL).end()
        raise RuntimeError("boom")


async def test_a_failed_attempt_is_a_failed_span_and_the_retry_has_its_own(exporter: InMemorySpanExporter) -> None:
    """A step's attempts are sibling spans; an exception leaving one marks it failed."""

    with workflow_span("wf-1") as trace_id:
        assert trace_id is not None and len(trace_id) == 32
        with pytest.raises(RuntimeError):
            _failing_attempt()
        with step_span("generate", 2, 0):
            pass
    first, _call, second = sorted(
        (s for s in exporter.get_finished_spans() if s.name != "workflow wf-1"), key=lambda s: s.start_time or 0
    )
    assert first.status.status_code is StatusCode.ERROR and second.status.status_code is StatusCode.UNSET
    assert (first.attributes or {})["ecl.step.attempt"] == 1 and (second.attributes or {})["ecl.step.attempt"] == 2


def test_off_by_default_nothing_is_recorded() -> None:
    assert not tracing_enabled()
    with workflow_span("wf-off") as trace_id, step_span("generate", 1, 0):
        span = start_llm_span("anthropic", MODEL)
    assert trace_id is None and not span.is_recording()
    assert load_settings(environ={}).observability.tracing is False
    assert load_settings(environ={"ECL_OBSERVABILITY__TRACING": "true"}).observability.tracing is True
