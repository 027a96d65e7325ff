"""The built-in Critique-Revise workflow on the in-memory durable context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ecl.core import MaxRevisionsExceeded, StepValidationError, WorkflowResult, WorkflowState
from ecl.llm import MockLlmProvider
from ecl.steps import PromptLibrary
from ecl.testing import InMemoryDurableContext
from ecl.workflows import (
    APPROVAL_PROMISE,
    STATE_DRAFT,
    STATE_REVISIONS,
    journal_name,
    parse_critique,
    promise_name,
)
from tests.unit.workflows_support import PASS, RecordingRecorder, critique_orchestrator, kind_of, revise, scripted


async def run(
    llm: MockLlmProvider,
    data: dict[str, Any] | None = None,
    ctx: InMemoryDurableContext | None = None,
    recorder: RecordingRecorder | None = None,
    **kwargs: Any,
) -> WorkflowResult:
    return await critique_orchestrator(llm, **kwargs).run(
        ctx or InMemoryDurableContext(), "critique-revise", data or {"topic": "Rust"}, recorder=recorder
    )


def kinds(llm: MockLlmProvider) -> list[str]:
    return [kind_of(r) for r in llm.requests]


async def test_happy_path_generate_critique_pass() -> None:
    llm = MockLlmProvider(responder=scripted([PASS]))
    ctx = InMemoryDurableContext()
    recorder = RecordingRecorder()
    result = await run(llm, ctx=ctx, recorder=recorder)
    assert result.state is WorkflowState.COMPLETED
    assert result.error is None
    assert result.outputs["generate"] == {"draft": "draft 0"}
    assert result.outputs["critique"] == {"critique": "good", "decision": "pass", "feedback": None}
    assert result.outputs["final"]["text"] == "draft 0"
    assert result.revisions == 0
    assert [s.step_id for s in result.steps] == ["generate", "critique", "final"]
    assert result.tokens.total > 0
    assert result.tokens.total == sum(s.llm_tokens_used.total for s in result.steps if s.llm_tokens_used)
    assert result.duration_ms is not None and result.duration_ms > 0
    assert kinds(llm) == ["generate", "critique"]
    assert ctx.executed == ["step:generate", "step:critique", "step:final"]
    assert recorder.state_names == ["running", "completed"]
    assert recorder.states[-1][1]["output"] == result.outputs
    assert [(r["step_id"], r["iteration"]) for r in recorder.started] == [
        ("generate", 0),
        ("critique", 0),
        ("final", 0),
    ]
    assert len(recorder.calls) == 2


async def test_revision_path_revises_then_passes() -> None:
    llm = MockLlmProvider(responder=scripted([revise("more"), revise("even more"), PASS]))
    ctx = InMemoryDurableContext()
    recorder = RecordingRecorder()
    result = await run(llm, ctx=ctx, recorder=recorder)
    assert result.state is WorkflowState.COMPLETED
    assert result.revisions == 2
    assert result.outputs["final"]["text"] == "draft 2"
    assert result.outputs["revise"] == {"revised_draft": "draft 2"}
    assert ctx.state == {STATE_DRAFT: "draft 2", STATE_REVISIONS: 2}
    assert ctx.executed == [
        "step:generate",
        "step:critique",
        "step:revise:1",
        "step:critique:1",
        "step:revise:2",
        "step:critique:2",
        "step:final",
    ]
    assert kinds(llm) == ["generate", "critique", "revise", "critique", "revise", "critique"]
    # The reviser got the critique's feedback, the current draft and the attempt number.
    revise_inputs = [r["input"] for r in recorder.started if r["step_id"] == "revise"]
    assert revise_inputs == [
        {"draft": "draft 0", "feedback": "more", "attempt": 1},
        {"draft": "draft 1", "feedback": "even more", "attempt": 2},
    ]
    assert [c for s, c in recorder.states if c["revision_count"] is not None] == [
        {"output": None, "error": None, "revision_count": 1},
        {"output": None, "error": None, "revision_count": 2},
        {"output": result.outputs, "error": None, "revision_count": 2},
    ]


async def test_max_revisions_fails_with_the_count() -> None:
    llm = MockLlmProvider(responder=scripted([revise()]))
    recorder = RecordingRecorder()
    ctx = InMemoryDurableContext()
    result = await run(llm, ctx=ctx, recorder=recorder)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == MaxRevisionsExceeded.__name__
    assert result.error["attempts"] == 3
    assert result.error["step_id"] == "critique"
    assert "after 3 revision(s)" in result.error["message"]
    assert result.revisions == 3
    assert kinds(llm).count("revise") == 3
    assert kinds(llm).count("critique") == 4
    assert "final" not in result.outputs
    assert ctx.state[STATE_REVISIONS] == 3
    assert recorder.state_names[-1] == "failed"
    assert recorder.states[-1][1]["error"] == result.error


async def test_invalid_critique_json_is_retried_then_fails_clearly() -> None:
    llm = MockLlmProvider(responder=scripted(["not json at all"]))
    recorder = RecordingRecorder()
    result = await run(llm, recorder=recorder)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "StepValidationError"
    assert result.error["step_id"] == "critique"
    assert "did not answer with JSON" in result.error["message"]
    assert "after 3 attempts" in result.error["message"]
    assert kinds(llm).count("critique") == 3
    critique_rows = [
        f["state"] for s, f in zip(recorder.started, recorder.finished, strict=True) if s["step_id"] == "critique"
    ]
    assert critique_rows == ["failed", "failed", "failed"]


async def test_invalid_then_valid_json_recovers() -> None:
    llm = MockLlmProvider(responder=scripted(['{"decision": "maybe"}', PASS]))
    result = await run(llm)
    assert result.state is WorkflowState.COMPLETED
    assert kinds(llm).count("critique") == 2
    assert result.steps[1].attempt == 2


async def test_fenced_json_is_accepted_in_the_workflow() -> None:
    llm = MockLlmProvider(responder=scripted([f"```json\n{revise('tighter')}\n```", f"```\n{PASS}\n```"]))
    result = await run(llm)
    assert result.state is WorkflowState.COMPLETED
    assert result.revisions == 1


@pytest.mark.parametrize(
    "reply",
    [
        PASS,
        f"  {PASS}\n",
        f"```json\n{PASS}\n```",
        f"```JSON\n{PASS}\n```\n",
        f"```\n{PASS}\n```",
        f"```json {PASS} ```",
        json.dumps({"critique": "ok", "decision": "pass"}),
    ],
)
def test_accepted_critique_replies(reply: str) -> None:
    assert parse_critique(reply).decision == "pass"


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        ("Sure! Here it is:\n```json\n" + PASS + "\n```", "(reply)"),
        ("```python\nprint(1)\n```", "(reply)"),
        ("[1, 2]", "(root)"),
        ('{"critique": "x", "decision": "maybe"}', "decision"),
        ('{"decision": "pass"}', "critique"),
        ('{"critique": "x", "decision": "revise", "feedback": null}', "feedback"),
        ('{"critique": "x", "decision": "revise", "feedback": "  "}', "feedback"),
    ],
)
def test_rejected_critique_replies_are_retryable_and_name_the_field(reply: str, field: str) -> None:
    with pytest.raises(StepValidationError) as info:
        parse_critique(reply)
    assert info.value.retryable is True
    assert info.value.step_id == "critique"
    assert info.value.errors[0]["field"] == field


async def test_a_draft_over_2000_characters_is_retried_then_fails_naming_the_field() -> None:
    llm = MockLlmProvider(responder=scripted([PASS], drafts=lambda k: "x" * 2001))
    result = await run(llm)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "generate"
    assert result.error["errors"][0]["field"] == "draft"
    assert kinds(llm) == ["generate"] * 3


async def test_an_empty_draft_fails() -> None:
    llm = MockLlmProvider(responder=scripted([PASS], drafts=lambda k: "   "))
    result = await run(llm)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["errors"][0]["field"] == "draft"


async def test_a_revision_identical_to_its_input_is_retried_then_fails() -> None:
    llm = MockLlmProvider(responder=scripted([revise()], drafts=lambda k: "same draft"))
    result = await run(llm)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "revise"
    assert "identical" in result.error["message"]
    assert kinds(llm).count("revise") == 3


async def test_replay_on_the_same_context_does_not_call_the_llm_again() -> None:
    llm = MockLlmProvider(responder=scripted([revise(), PASS]))
    ctx = InMemoryDurableContext()
    first = await run(llm, ctx=ctx)
    calls = len(llm.requests)
    again = await run(llm, ctx=ctx)
    restarted = await run(llm, ctx=ctx.replay())
    assert len(llm.requests) == calls == 4
    assert again.outputs == first.outputs == restarted.outputs
    assert restarted.revisions == first.revisions == 1
    assert [s.step_id for s in restarted.steps] == [s.step_id for s in first.steps]
    assert ctx.executed.count("step:generate") == 1


async def test_a_step_interrupted_mid_run_runs_again_on_replay_and_nothing_before_it() -> None:
    """Kill during the first critique: generate is journaled, critique is not."""
    llm = MockLlmProvider(responder=scripted([PASS]), delay=0.2)
    ctx = InMemoryDurableContext()
    task = asyncio.create_task(run(llm, ctx=ctx))
    while len(llm.requests) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(ctx.journal) == ["step:generate"]
    result = await run(llm, ctx=ctx.replay())
    assert result.state is WorkflowState.COMPLETED
    assert kinds(llm) == ["generate", "critique", "critique"]


async def test_human_approval_then_revise_then_approve() -> None:
    llm = MockLlmProvider(responder=scripted([PASS]))
    ctx = InMemoryDurableContext()
    recorder = RecordingRecorder()
    task = asyncio.create_task(run(llm, {"topic": "Rust", "require_approval": True}, ctx, recorder))
    assert await ctx.until_waiting(APPROVAL_PROMISE) == "approval"
    assert recorder.state_names == ["running", "waiting_for_revision"]
    assert ctx.signal(APPROVAL_PROMISE, {"decision": "revise", "feedback": "shorter"}) == "approval"
    assert await ctx.until_waiting(APPROVAL_PROMISE) == "approval#2"
    assert ctx.signal(APPROVAL_PROMISE, {"decision": "approve", "feedback": None}) == "approval#2"
    result = await task
    assert result.state is WorkflowState.COMPLETED
    assert result.revisions == 1
    assert result.outputs["final"]["text"] == "draft 1"
    assert ctx.executed == [
        "step:generate",
        "step:critique",
        "step:final",
        "step:revise:1",
        "step:critique:1",
        "step:final:1",
    ]
    revise_inputs = [r["input"] for r in recorder.started if r["step_id"] == "revise"]
    assert revise_inputs == [{"draft": "draft 0", "feedback": "shorter", "attempt": 1}]
    assert recorder.state_names == [
        "running",
        "waiting_for_revision",
        "running",
        "running",
        "waiting_for_revision",
        "running",
        "completed",
    ]
    # The promises survive a restart: replay goes straight through.
    calls = len(llm.requests)
    replayed = await run(llm, {"topic": "Rust", "require_approval": True}, ctx.replay())
    assert replayed.outputs == result.outputs
    assert len(llm.requests) == calls


async def test_approval_rounds_are_bounded() -> None:
    llm = MockLlmProvider(responder=scripted([PASS]))
    ctx = InMemoryDurableContext()
    for _ in range(4):
        ctx.signal(APPROVAL_PROMISE, {"decision": "revise", "feedback": "again"})
    result = await run(llm, {"topic": "Rust", "require_approval": True}, ctx)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert (result.error["type"], result.error["step_id"], result.error["attempts"]) == (
        "MaxRevisionsExceeded",
        "approval",
        3,
    )
    assert result.revisions == 3
    assert ctx.executed[-2:] == ["step:critique:3", "step:final:3"]


async def test_human_revise_rounds_run_the_critique_loop_bounded() -> None:
    """After a human revise the critique may ask for more, at most max_iterations per round."""
    llm = MockLlmProvider(responder=scripted([PASS, revise(), revise(), revise(), revise()]))
    ctx = InMemoryDurableContext()
    ctx.signal(APPROVAL_PROMISE, {"decision": "revise", "feedback": "human"})
    result = await run(llm, {"topic": "Rust", "require_approval": True}, ctx)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert (result.error["step_id"], result.error["attempts"]) == ("critique", 3)
    assert result.revisions == 3


@pytest.mark.parametrize("payload", ["yes", {"decision": "maybe"}, None])
async def test_an_invalid_approval_answer_fails_the_run(payload: Any) -> None:
    llm = MockLlmProvider(responder=scripted([PASS]))
    ctx = InMemoryDurableContext()
    ctx.signal(APPROVAL_PROMISE, payload)
    result = await run(llm, {"topic": "Rust", "require_approval": True}, ctx)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "approval"


async def test_prompts_folder_overrides_the_packaged_templates(tmp_path: Path) -> None:
    (tmp_path / "generate.j2").write_text("CUSTOM about {{ topic }}")
    llm = MockLlmProvider(responder=scripted([PASS]))
    result = await run(llm, prompts=PromptLibrary(override_dir=tmp_path))
    assert result.state is WorkflowState.COMPLETED
    assert llm.requests[0].messages[-1].content == "CUSTOM about Rust"
    assert '"decision"' in llm.requests[1].messages[-1].content  # critique.j2 still the packaged one


def test_packaged_prompts_render() -> None:
    prompts = PromptLibrary()
    assert "Rust" in prompts.render("generate", topic="Rust")
    critique = prompts.render("critique", draft="D")
    assert '"decision"' in critique and "D" in critique
    assert "revision 2" in prompts.render("revise", draft="D", feedback="F", attempt=2)
    assert prompts.render("system")


def test_persisted_names_are_pinned() -> None:
    """Journal names, state keys and promise names are compatibility data."""
    assert journal_name("critique") == "step:critique"
    assert journal_name("critique", 0) == "step:critique"
    assert journal_name("revise", 2) == "step:revise:2"
    assert (STATE_DRAFT, STATE_REVISIONS) == ("current_draft", "revision_count")
    assert APPROVAL_PROMISE == "approval"
    assert [promise_name(APPROVAL_PROMISE, r) for r in (1, 2, 3)] == ["approval", "approval#2", "approval#3"]
    assert WorkflowState.WAITING_FOR_REVISION.value == "waiting_for_revision"


async def test_persisted_operations_of_a_revision_run_are_pinned() -> None:
    llm = MockLlmProvider(responder=scripted([revise(), PASS]))
    ctx = InMemoryDurableContext()
    await run(llm, ctx=ctx)
    assert ctx.operations == [
        ("run", "step:generate"),
        ("set", "current_draft"),
        ("run", "step:critique"),
        ("run", "step:revise:1"),
        ("set", "current_draft"),
        ("set", "revision_count"),
        ("run", "step:critique:1"),
        ("run", "step:final"),
    ]
    # The journaled payload is StepExecution JSON.
    status, payload = ctx.journal["step:critique"]
    assert status == "ok"
    assert set(payload) == {"step_id", "output", "feedback", "metadata", "traces"}
    assert payload["feedback"] == "add detail"


async def test_a_missing_workflow_input_fails_fast_naming_the_field() -> None:
    llm = MockLlmProvider(responder=scripted([PASS]))
    result = await run(llm, {"subject": "Rust"})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert (result.error["type"], result.error["step_id"]) == ("StepValidationError", "generate")
    assert result.error["errors"][0]["field"] == "topic"
    assert llm.requests == []
