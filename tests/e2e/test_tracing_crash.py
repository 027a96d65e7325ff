"""Traces across processes: a resumed workflow continues its trace (SIGKILL ``ecl run``
mid-revision, then ``ecl resume``), and the API continues the caller's (W3C ``traceparent``).

The processes export over OTLP/HTTP (configured by the standard ``OTEL_*`` variables) to a
receiver in the test. The workflow's trace context, recorded at its submission
(``workflows.trace_context``), is the parent of the resumed run, so every span — the first
process's and the second's — has the same trace id; the steps the first run completed have
spans from the first process only (they are replayed, not run again).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

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
    kill,
    responder,
    stop,
    wait_until,
)
from tests.e2e.test_api import free_port
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e


def test_a_resumed_workflow_continues_its_trace_and_completed_steps_have_no_new_spans(
    tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    with FakeAnthropicServer(responder=responder([REVISE, PASS])) as server:
        ecl = Ecl(tmp_path, server.url)
        otel = {
            "ECL_OBSERVABILITY__TRACING": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
            "OTEL_SERVICE_NAME": "ecl-crash-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # export each span batch at once
        }
        # Hold the critique of the first revision: generate, critique, revise are done.
        hold = server.hold_next(lambda r: is_critique(r) and "draft 1" in r.text)
        proc = ecl.start("run", "critique-revise", "--topic", "Rust", "--id", "tr-1", "--llm", "anthropic", **otel)
        try:
            hold.wait_arrived(START_TIMEOUT)
            otlp_receiver.wait_for(["submit tr-1", "step generate", "step revise"], START_TIMEOUT)
        finally:
            kill(proc)
            hold.release()
        first = otlp_receiver.received()

        result = ecl.json("resume", "tr-1", **otel)
        assert result["state"] == "completed" and result["revisions"] == 1
        assert server.count(is_generate) == 1 and server.count(is_revise) == 1

    ((trace_context,),) = ecl.query("SELECT trace_context FROM workflows WHERE id = 'tr-1'")
    _version, trace_id, submit_id, _flags = trace_context.split("-")
    spans = otlp_receiver.received()  # the resumed process flushed its spans as it exited
    assert {s.trace_id for s in spans} == {trace_id}, [(s.name, s.trace_id) for s in spans]
    assert {s.service for s in spans} == {"ecl-crash-test"}
    (submit,) = [s for s in spans if s.name == "submit tr-1"]
    assert submit.span_id == submit_id and submit.parent_span_id == ""

    # The first run's workflow span never ended (SIGKILL); the resumed run's is a child of
    # the submission, marked resumed.
    (resumed,) = [s for s in spans if s.name == "workflow tr-1"]
    assert resumed.parent_span_id == submit_id and resumed.attributes["ecl.workflow.resumed"] is True

    def steps_under(run: ReceivedSpan) -> list[str]:
        return [s.name for s in spans if s.parent_span_id == run.span_id and s.name.startswith("step ")]

    # After the resume: only the critique that was in flight and the final step ran.
    assert sorted(steps_under(resumed)) == ["step critique", "step final"]
    # Before the kill: generate, critique, revise, each once, in the first process's run.
    before = [s for s in first if s.name.startswith("step ")]
    assert sorted(s.name for s in before) == ["step critique", "step generate", "step revise"]
    assert len({s.parent_span_id for s in before}) == 1 and before[0].parent_span_id != resumed.span_id
    assert [s.name for s in spans].count("step generate") == 1
    assert [s.name for s in spans].count("step revise") == 1
    # Each LLM call has its span under its step attempt: 4 calls were answered or held.
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert all(s.attributes["gen_ai.operation.name"] == "chat" for s in chats)
    assert len(chats) >= 4


def test_the_api_continues_the_callers_trace(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    """POST /workflows with a W3C traceparent: the workflow's submission is a child of the
    caller's span and its run a child of the submission, all in the caller's trace; without
    one, the workflow is not in that trace."""
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with FakeAnthropicServer(responder=responder([PASS])) as server:
        ecl = Ecl(tmp_path, server.url)
        assert ecl.run("migrate").returncode == 0
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = ecl.start(
            "server",
            "start",
            "--port",
            str(port),
            ECL_LLM_PROVIDER="anthropic",
            ECL_OBSERVABILITY__TRACING="true",
            ECL_OBSERVABILITY__CAPTURE_CONTENT="true",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        try:
            wait_until(answers(f"{url}/health/live"), proc, "ecl server start")
            with httpx.Client(base_url=url, timeout=120) as api:
                body = {"definition_id": "critique-revise", "input": {"topic": "traces"}}
                created = api.post(
                    "/workflows", json=body, headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
                )
                assert created.status_code == 201, created.text
                untraced = api.post("/workflows", json={**body, "input": {"topic": "other"}})
                assert untraced.status_code == 201, untraced.text
                workflow_id, other_id = created.json()["id"], untraced.json()["id"]
                otlp_receiver.wait_for([f"workflow {workflow_id}", f"workflow {other_id}"], START_TIMEOUT)
                # With content capture, the API returns each call's prompt and reply.
                calls = api.get(f"/workflows/{workflow_id}/llm-calls").json()["items"]
                assert [c["reply"] for c in calls] == ["draft 0", PASS]
                assert all(c["prompt"].startswith("[system]\n") for c in calls)
        finally:
            stop(proc)
    spans = otlp_receiver.received()
    (submit,) = [s for s in spans if s.name == f"submit {workflow_id}"]
    assert (submit.trace_id, submit.parent_span_id) == (caller_trace, caller_span)
    (run,) = [s for s in spans if s.name == f"workflow {workflow_id}"]
    assert run.parent_span_id == submit.span_id
    assert {s.trace_id for s in spans if s.name.startswith("step ") and s.parent_span_id == run.span_id} == {
        caller_trace
    }
    (other,) = [s for s in spans if s.name == f"submit {other_id}"]
    # (its parent, if any, is the request's own span: FastAPI traces its requests itself)
    assert other.trace_id != caller_trace


def test_ecl_logs_content_shows_prompts_and_replies_only_when_stored(tmp_path: Path) -> None:
    with FakeAnthropicServer(responder=responder([PASS])) as server:
        ecl = Ecl(tmp_path, server.url)
        kept = ecl.run(
            "run",
            "critique-revise",
            "--topic",
            "Rust",
            "--id",
            "c-1",
            "--llm",
            "anthropic",
            ECL_OBSERVABILITY__CAPTURE_CONTENT="true",
        )
        assert kept.returncode == 0, kept.stderr
        plain = ecl.run("run", "critique-revise", "--topic", "Rust", "--id", "c-2", "--llm", "anthropic")
        assert plain.returncode == 0, plain.stderr
    shown = ecl.run("logs", "c-1", "--content")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("    prompt:\n") == 2 and shown.stdout.count("    reply:\n") == 2
    assert "      draft 0" in shown.stdout and "      [user]" in shown.stdout
    assert "prompt:" not in ecl.run("logs", "c-1").stdout  # only with --content
    events = ecl.json("logs", "c-1", "--content")
    assert [e["reply"] for e in events if e["kind"] == "llm_call"] == ["draft 0", PASS]
    # Without capture nothing was stored: nothing to show.
    assert "prompt:" not in ecl.run("logs", "c-2", "--content").stdout
    assert [e["prompt"] for e in ecl.json("logs", "c-2", "--content") if e["kind"] == "llm_call"] == [None, None]
    assert ecl.query("SELECT count(*) FROM llm_calls WHERE prompt IS NOT NULL OR reply IS NOT NULL") == [(2,)]
