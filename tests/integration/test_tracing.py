"""Tracing with OpenTelemetry (issue 14, item 1): the span tree of a Critique-Revise run with
one revision — submission → workflow run → one span per step attempt → LLM call with the
GenAI semantic-convention attributes — and the run's ``trace_id`` in its log lines; the
exporters the ``OTEL_*`` variables choose; content capture (``observability.capture_content``)
on the span and in the ``llm_calls`` rows, and nothing of it without.

The embedded engine in this process, the real ``anthropic`` SDK against the fake server over
HTTP, spans captured by the SDK's in-memory exporter. (A resume in another process after a
SIGKILL, and a W3C ``traceparent`` given to the API: tests/e2e/test_tracing_crash.py.)
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

import ecl
from ecl.config import load_settings
from ecl.core import ConfigError, InputValidationError, RetryPolicy, WorkflowState
from ecl.llm import LlmProvider, build_provider
from ecl.llm.mock import scripted_workflow_responder
from ecl.observability import configure_logging, configure_tracing, tracing_enabled
from ecl.observability.content import configure_content
from ecl.observability.tracing import exporters_from, start_llm_span, step_span, workflow_span
from ecl.store.database import create_sync_engine
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


async def _run(tmp_path: Path, server: FakeAnthropicServer, workflow_id: str, **environ: str) -> ecl.WorkflowResult:
    llm: LlmProvider = build_provider("anthropic", model=MODEL, api_key="sk-test", base_url=server.url, retry=FAST)
    environ = {"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"), **environ}
    settings = load_settings(environ=environ, cwd=tmp_path)
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

    (submit,) = [s for s in spans if s.parent is None]
    assert submit.name == "submit wf-traced" and submit.kind is SpanKind.PRODUCER
    assert submit.attributes == {"ecl.workflow.id": "wf-traced", "ecl.workflow.definition": "critique-revise"}
    assert submit.context is not None
    trace_id = submit.context.trace_id
    assert {s.context.trace_id for s in spans if s.context is not None} == {trace_id}

    def children(parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda s: s.start_time or 0)

    (run,) = children(submit)
    assert run.name == "workflow wf-traced" and run.attributes == {"ecl.workflow.id": "wf-traced"}

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


def _calls(tmp_path: Path, workflow_id: str) -> list[tuple[str | None, str | None]]:
    db = create_sync_engine(f"sqlite:///{tmp_path / 'ecl.db'}")
    try:
        with db.connect() as conn:
            rows = conn.execute(
                text("SELECT prompt, reply FROM llm_calls WHERE workflow_id = :w ORDER BY created_at"),
                {"w": workflow_id},
            )
            return [(r.prompt, r.reply) for r in rows]
    finally:
        db.dispose()


async def test_content_capture_puts_prompt_and_reply_on_the_span_and_in_the_rows_capped_and_redacted(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    secret = "sk-ant-very-secret-key-123456"
    environ = {
        "ECL_OBSERVABILITY__CAPTURE_CONTENT": "true",
        "ECL_OBSERVABILITY__MAX_CONTENT_CHARS": "300",
        "ECL_CLAUDE_API_KEY": secret,
    }
    long_reply = f"draft 0 key {secret} " + "x" * 1000
    with FakeAnthropicServer(responder=lambda r: PASS if '"decision"' in r.text else long_reply) as server:
        try:
            result = await _run(tmp_path, server, "wf-content", **environ)
        finally:
            configure_content(False)
    assert result.state is WorkflowState.COMPLETED, result.error

    (generate, critique) = _calls(tmp_path, "wf-content")
    prompt, reply = generate
    assert prompt is not None and prompt.startswith("[system]\n") and "[user]\n" in prompt and "traces" in prompt
    assert reply is not None and reply.startswith("draft 0 key ********** xxx")  # the API key hidden
    assert reply.endswith("more characters not kept]") and len(reply) < 400  # capped at 300
    assert critique[1] == PASS and critique[0] is not None and "demanding editor" in critique[0]
    assert not any(secret in (p or "") + (r or "") for p, r in _calls(tmp_path, "wf-content"))

    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 2
    attributes = dict(chats[1].attributes or {})
    (message,) = json.loads(str(attributes["gen_ai.input.messages"]))
    assert message["role"] == "user" and message["parts"][0]["type"] == "text"
    assert "demanding editor" in message["parts"][0]["content"]
    (answer,) = json.loads(str(attributes["gen_ai.output.messages"]))
    assert answer["role"] == "assistant" and answer["parts"][0]["content"] == PASS
    assert "gen_ai.system_instructions" in dict(chats[0].attributes or {})


async def test_without_content_capture_nothing_of_the_content_is_stored(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    with FakeAnthropicServer(responder=responder([PASS])) as server:
        result = await _run(tmp_path, server, "wf-no-content")
    assert result.state is WorkflowState.COMPLETED, result.error
    calls = _calls(tmp_path, "wf-no-content")
    assert calls == [(None, None), (None, None)]
    for span in exporter.get_finished_spans():
        assert not any(
            key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_instr")) for key in span.attributes or {}
        )


def test_the_otel_variables_choose_the_exporters() -> None:
    assert exporters_from(None, {}) == []  # tracing without an exporter: ids for the logs only
    (otlp,) = exporters_from(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert type(otlp).__name__ == "OTLPSpanExporter"
    assert otlp._endpoint == "http://collector:4318/v1/traces"  # type: ignore[attr-defined]
    (otlp,) = exporters_from("http://mine:4318/", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert otlp._endpoint == "http://mine:4318/v1/traces"  # type: ignore[attr-defined]
    (otlp,) = exporters_from(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/traces"})
    assert otlp._endpoint == "http://c:4318/traces"  # type: ignore[attr-defined]
    assert exporters_from("http://mine:4318", {"OTEL_TRACES_EXPORTER": "none"}) == []
    (console,) = exporters_from(None, {"OTEL_TRACES_EXPORTER": "console"})
    assert type(console).__name__ == "ConsoleSpanExporter"
    with pytest.raises(InputValidationError, match="OTEL_TRACES_EXPORTER = 'zipkin'"):
        exporters_from(None, {"OTEL_TRACES_EXPORTER": "zipkin"})


async def test_a_signal_is_traced_in_the_senders_trace_and_linked_to_the_workflows(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    llm = ecl.MockLlmProvider(responder=scripted_workflow_responder)
    settings = load_settings(environ={"ECL_ARTIFACT_PATH": str(tmp_path / "artifacts")}, cwd=tmp_path)
    async with ecl.open_engine(database_url=f"sqlite:///{tmp_path / 'ecl.db'}", llm=llm, settings=settings) as engine:
        wid = await engine.submit(
            "critique-revise", {"topic": "signals", "require_approval": True}, workflow_id="wf-sig"
        )
        while not any(s.name == "step critique" for s in exporter.get_finished_spans()):
            await asyncio.sleep(0.02)
        # The sender's span (as an API request's traceparent makes it current).
        sender = trace.NonRecordingSpan(
            trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        )
        with trace.use_span(sender):
            await engine.signal(wid, "approval", {"decision": "approve", "feedback": None})
        result = await engine.result(wid)
    assert result.state is WorkflowState.COMPLETED, result.error
    spans = exporter.get_finished_spans()
    (submit,) = [s for s in spans if s.name == "submit wf-sig"]
    (signal,) = [s for s in spans if s.name == "signal approval wf-sig"]
    assert signal.kind is SpanKind.PRODUCER and signal.parent is not None and submit.context is not None
    assert (signal.parent.trace_id, signal.parent.span_id) == (0x1234, 0x5678)  # the sender's trace
    assert signal.attributes == {"ecl.workflow.id": "wf-sig", "ecl.signal.name": "approval"}
    (link,) = signal.links  # and a link to the workflow's
    assert (link.context.trace_id, link.context.span_id) == (submit.context.trace_id, submit.context.span_id)


def test_an_otlp_endpoint_that_is_not_a_url_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"observability.otlp_endpoint = 'collector:4318'"):
        load_settings(environ={"ECL_OBSERVABILITY__OTLP_ENDPOINT": "collector:4318"})
    settings = load_settings(environ={"ECL_OBSERVABILITY__OTLP_ENDPOINT": "http://collector:4318"})
    assert settings.observability.otlp_endpoint == "http://collector:4318"
