"""The orchestrator on generic graphs: order, concurrency, conditions, loops, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from ecl.core import (
    EngineSignal,
    NeedsRevision,
    NonDeterminismError,
    NotFoundError,
    StepError,
    StepResult,
    Success,
    WorkflowState,
)
from ecl.steps import Step, StepContext
from ecl.testing import InMemoryDurableContext
from ecl.workflows import APPROVAL_PROMISE
from tests.unit.workflows_support import AddOne, RecordingRecorder, graph, graph_orchestrator

# ---------------------------------------------------------------- test steps


class Timed(BaseModel):
    value: int
    ms: int = 0


class Value(BaseModel):
    value: int


class Wait(Step[Timed, Value]):
    """Returns value after ms milliseconds; fails (not retryable) for value < 0."""

    id = "wait"
    name = "Wait"
    input_model = Timed
    output_model = Value
    finished: list[int] = []
    running = 0
    peak = 0  # the most steps waiting at once

    async def execute(self, ctx: StepContext, input: Timed) -> StepResult[Value]:
        Wait.running += 1
        Wait.peak = max(Wait.peak, Wait.running)
        try:
            await asyncio.sleep(input.ms / 1000)
        finally:
            Wait.running -= 1
        if input.value < 0:
            raise StepError(f"negative {input.value}", retryable=False)
        Wait.finished.append(input.value)
        return Success(Value(value=input.value))


class Text(BaseModel):
    text: str


class Judged(BaseModel):
    verdict: str
    decision: str = "pass"
    feedback: str | None = None


class Improve(BaseModel):
    text: str
    feedback: str
    attempt: int


class Improved(BaseModel):
    better: str


class Write(Step[Text, Text]):
    id = "write"
    name = "Write"
    input_model = Text
    output_model = Text

    async def execute(self, ctx: StepContext, input: Text) -> StepResult[Text]:
        return Success(Text(text=input.text))


class Judge(Step[Text, Judged]):
    """Wants at least three '!' (via NeedsRevision)."""

    id = "judge"
    name = "Judge"
    input_model = Text
    output_model = Judged

    async def execute(self, ctx: StepContext, input: Text) -> StepResult[Judged]:
        if input.text.count("!") < 3:
            return NeedsRevision(Judged(verdict="meh", decision="revise"), "more !")
        return Success(Judged(verdict="great"))


class DecisionJudge(Judge):
    """The same, but says so with an output field instead of NeedsRevision."""

    id = "decision-judge"

    async def execute(self, ctx: StepContext, input: Text) -> StepResult[Judged]:
        if input.text.count("!") < 3:
            return Success(Judged(verdict="meh", decision="revise", feedback="more !"))
        return Success(Judged(verdict="great"))


class Shout(Step[Improve, Improved]):
    id = "shout"
    name = "Shout"
    input_model = Improve
    output_model = Improved

    async def execute(self, ctx: StepContext, input: Improve) -> StepResult[Improved]:
        await asyncio.sleep(0.005)
        return Success(Improved(better=input.text + "!"))


EXTRA: list[Step[Any, Any]] = [Wait(), Write(), Judge(), DecisionJudge(), Shout()]


def loop_definition(judge: str = "judge", bound: int = 5) -> dict[str, Any]:
    """write -> judge <-> shout (loop) ; a sibling of judge ; after -> after judge."""
    return {
        "id": "loop",
        "name": "Loop with a sibling",
        "steps": [
            {"step_id": "write", "input": {"text": "$input.text"}},
            {"step_id": "judge", "step": judge, "depends_on": ["write"], "input": {"text": "$state.current_draft"}},
            {"step_id": "sibling", "step": "wait", "depends_on": ["write"], "input": {"value": 7, "ms": 30}},
            {
                "step_id": "shout",
                "depends_on": ["judge"],
                "revision_source": "judge",
                "input": {"text": "$state.current_draft", "feedback": "$loop.feedback", "attempt": "$loop.iteration"},
            },
            {"step_id": "after", "step": "write", "depends_on": ["judge"], "input": {"text": "$state.current_draft"}},
        ],
        "transitions": [
            {
                "kind": "revision_loop",
                "reviser": "shout",
                "validator": "judge",
                "max_iterations": bound,
                "draft": "$steps.write.text",
                "revised_field": "better",
            }
        ],
    }


def timed(ms: dict[str, int], values: dict[str, int] | None = None) -> dict[str, Any]:
    """start -> (x, y, z) concurrently -> join(y)."""
    values = values or {}
    return {
        "id": "timed",
        "name": "Timed",
        "steps": [
            {"step_id": "start", "step": "wait", "input": {"value": 0}},
            *(
                {
                    "step_id": s,
                    "step": "wait",
                    "depends_on": ["start"],
                    "input": {"value": values.get(s, i + 1), "ms": ms.get(s, 0)},
                }
                for i, s in enumerate(["x", "y", "z"])
            ),
            {"step_id": "join", "step": "wait", "depends_on": ["x", "y", "z"], "input": {"value": "$steps.y.value"}},
        ],
    }


# ---------------------------------------------------------------- order and concurrency


async def test_independent_steps_run_concurrently() -> None:
    AddOne.peak = 0
    orch = graph_orchestrator(graph())
    ctx = InMemoryDurableContext()
    result = await orch.run(ctx, "fan", {"n": 1})
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs == {"a": {"value": 2}, "b": {"value": 3}, "c": {"value": 3}, "d": {"value": 4}}
    assert AddOne.peak == 2  # b and c at once
    assert ctx.executed == ["step:a", "step:b", "step:c", "step:d"]


@pytest.mark.parametrize("ms", [{"x": 150, "y": 75, "z": 0}, {"x": 0, "y": 75, "z": 150}])
async def test_journal_order_and_results_do_not_depend_on_completion_order(ms: dict[str, int]) -> None:
    Wait.finished = []
    Wait.running = Wait.peak = 0
    orch = graph_orchestrator(timed(ms), extra=EXTRA)
    ctx = InMemoryDurableContext()
    result = await orch.run(ctx, "timed", {})
    assert Wait.peak == 3  # x, y and z waited at once (not a wall-clock bound: a slow host broke that)
    assert ctx.operations == [("run", f"step:{s}") for s in ["start", "x", "y", "z", "join"]]
    assert [s.step_id for s in result.steps] == ["start", "x", "y", "z", "join"]
    assert Wait.finished[1:4] != [1, 2, 3] or ms["x"] == 0  # they really finished out of order
    # A restart replays through the same positions without running anything.
    executed = len(ctx.executed)
    replayed = await orch.run(ctx.replay(), "timed", {})
    assert replayed.outputs == result.outputs
    assert len(ctx.executed) == executed


async def test_a_loop_never_interleaves_with_a_concurrent_sibling() -> None:
    """The loop's durable calls would otherwise take positions depending on timing."""
    orch = graph_orchestrator(loop_definition(), extra=EXTRA)
    ctx = InMemoryDurableContext()
    result = await orch.run(ctx, "loop", {"text": "hi"})
    assert result.state is WorkflowState.COMPLETED
    assert result.outputs["after"] == {"text": "hi!!!"}
    assert result.revisions == 3
    assert ctx.operations[:3] == [("run", "step:write"), ("run", "step:sibling"), ("set", "current_draft")]
    executed = list(ctx.executed)
    replayed = await orch.run(ctx.replay(), "loop", {"text": "hi"})
    assert replayed.outputs == result.outputs
    assert ctx.executed == executed


async def test_a_validator_may_ask_for_revision_with_a_decision_field() -> None:
    orch = graph_orchestrator(loop_definition("decision-judge"), extra=EXTRA)
    ctx = InMemoryDurableContext()
    recorder = RecordingRecorder()
    result = await orch.run(ctx, "loop", {"text": "hey"}, recorder=recorder)
    assert result.revisions == 3
    assert result.outputs["judge"]["verdict"] == "great"
    # Steps are recorded under their definition ids, not their implementation keys.
    assert {r["step_id"] for r in recorder.started} == {"write", "judge", "sibling", "shout", "after"}
    assert [s.step_id for s in result.steps][:2] == ["write", "sibling"]


async def test_loop_bound_from_the_definition() -> None:
    orch = graph_orchestrator(loop_definition(bound=2), extra=EXTRA)
    result = await orch.run(InMemoryDurableContext(), "loop", {"text": "x"})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert (result.error["type"], result.error["attempts"], result.error["step_id"]) == (
        "MaxRevisionsExceeded",
        2,
        "judge",
    )


# ---------------------------------------------------------------- conditions


def conditional(condition: str) -> dict[str, Any]:
    data = graph([{"kind": "conditional", "from": "b", "to": "d", "condition": condition}])
    data["steps"].append({"step_id": "e", "step": "add", "depends_on": ["d"], "input": {"value": "$steps.d.value"}})
    return data


async def test_a_false_condition_skips_the_step_and_its_dependents() -> None:
    orch = graph_orchestrator(conditional("steps.b.value > 10"))
    ctx = InMemoryDurableContext()
    result = await orch.run(ctx, "fan", {"n": 1})
    assert result.state is WorkflowState.COMPLETED
    assert set(result.outputs) == {"a", "b", "c"}
    assert "step:d" not in ctx.executed and "step:e" not in ctx.executed


async def test_a_true_condition_runs_the_step() -> None:
    orch = graph_orchestrator(conditional("steps.b.value > 10 and input.n in [20, 30]"))
    result = await orch.run(InMemoryDurableContext(), "fan", {"n": 20})
    assert result.outputs["d"] == {"value": 23}
    assert result.outputs["e"] == {"value": 24}


async def test_a_condition_that_cannot_be_evaluated_fails_the_run_naming_the_step() -> None:
    orch = graph_orchestrator(conditional("input.label > 3"))
    result = await orch.run(InMemoryDurableContext(), "fan", {"n": 1, "label": "x"})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "d"
    assert "cannot compare string > number" in result.error["message"]


# ---------------------------------------------------------------- errors


async def test_a_step_failure_is_a_failed_result_not_an_exception() -> None:
    orch = graph_orchestrator(timed({}, {"y": -1}), extra=EXTRA)
    recorder = RecordingRecorder()
    ctx = InMemoryDurableContext()
    result = await orch.run(ctx, "timed", {}, recorder=recorder)
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert (result.error["type"], result.error["step_id"]) == ("StepError", "wait")
    assert "negative -1" in result.error["message"]
    assert recorder.state_names == ["running", "failed"]
    # Every sibling finished and is journaled, so a replay meets the same journal.
    assert set(ctx.journal) == {"step:start", "step:x", "step:y", "step:z"}
    assert ctx.journal["step:y"][0] == "error"
    again = await orch.run(ctx.replay(), "timed", {})
    assert again.error == result.error


async def test_the_first_failure_in_definition_order_is_reported() -> None:
    orch = graph_orchestrator(timed({"x": 40, "z": 0}, {"x": -1, "z": -3}), extra=EXTRA)
    result = await orch.run(InMemoryDurableContext(), "timed", {})
    assert result.error is not None
    assert "negative -1" in result.error["message"]


async def test_an_unknown_definition_raises_not_found() -> None:
    orch = graph_orchestrator(graph())
    with pytest.raises(NotFoundError) as info:
        await orch.run(InMemoryDurableContext(), "nope", {})
    assert info.value.kind == "definition"


class Signal(EngineSignal):
    pass


class SignallingContext(InMemoryDurableContext):
    """Raises ``error`` from the ``run`` named ``at``."""

    def __init__(self, at: str, error: BaseException) -> None:
        super().__init__()
        self.at = at
        self.error = error

    async def run(self, name: str, fn: Callable[[], Awaitable[Any]], **kwargs: Any) -> Any:
        if name == self.at:
            raise self.error
        return await super().run(name, fn, **kwargs)


@pytest.mark.parametrize("at", ["step:a", "step:c"])
@pytest.mark.parametrize(
    "error",
    [Signal(), NonDeterminismError("diverged", position=1), asyncio.CancelledError()],
    ids=["signal", "nondeterminism", "cancelled"],
)
async def test_engine_signals_cancellation_and_non_determinism_propagate(at: str, error: BaseException) -> None:
    orch = graph_orchestrator(graph())
    recorder = RecordingRecorder()
    with pytest.raises(type(error)):
        await orch.run(SignallingContext(at, error), "fan", {"n": 1}, recorder=recorder)
    assert "failed" not in recorder.state_names
    assert "completed" not in recorder.state_names


async def test_a_changed_definition_is_detected_on_replay() -> None:
    orch = graph_orchestrator(graph())
    ctx = InMemoryDurableContext()
    await orch.run(ctx, "fan", {"n": 1})
    renamed = graph()
    renamed["steps"][2]["step_id"] = "c2"
    with pytest.raises(NonDeterminismError) as info:
        await graph_orchestrator(renamed).run(ctx.replay(), "fan", {"n": 1})
    assert info.value.position == 2
    assert info.value.expected == "run step:c"
    assert info.value.actual == "run step:c2"


async def test_cancelling_the_run_cancels_the_running_steps() -> None:
    orch = graph_orchestrator(timed({"x": 5000, "y": 5000}), extra=EXTRA)
    ctx = InMemoryDurableContext()
    task = asyncio.create_task(orch.run(ctx, "timed", {}))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(ctx.journal) == {"step:start", "step:z"}


# ---------------------------------------------------------------- inputs and options


async def test_literal_inputs_and_the_dollar_escape() -> None:
    data = {
        "id": "lit",
        "name": "Literals",
        "steps": [{"step_id": "w", "step": "write", "input": {"text": "$$HOME"}}],
    }
    result = await graph_orchestrator(data, extra=EXTRA).run(InMemoryDurableContext(), "lit", {})
    assert result.outputs["w"] == {"text": "$HOME"}


async def test_approval_from_the_definition_options_and_input_override() -> None:
    data = loop_definition()
    data["options"] = {"require_approval": True}
    orch = graph_orchestrator(data, extra=EXTRA)
    ctx = InMemoryDurableContext()
    task = asyncio.create_task(orch.run(ctx, "loop", {"text": "!!!"}))
    await ctx.until_waiting(APPROVAL_PROMISE)
    ctx.signal(APPROVAL_PROMISE, {"decision": "approve"})
    assert (await task).state is WorkflowState.COMPLETED
    # The input may switch it off.
    result = await orch.run(InMemoryDurableContext(), "loop", {"text": "!!!", "require_approval": False})
    assert result.state is WorkflowState.COMPLETED


async def test_an_approval_gate_without_a_loop_can_only_approve() -> None:
    orch = graph_orchestrator(graph())
    ctx = InMemoryDurableContext()
    ctx.signal(APPROVAL_PROMISE, {"decision": "approve"})
    assert (await orch.run(ctx, "fan", {"n": 1, "require_approval": True})).state is WorkflowState.COMPLETED
    ctx = InMemoryDurableContext()
    ctx.signal(APPROVAL_PROMISE, {"decision": "revise", "feedback": "no"})
    result = await orch.run(ctx, "fan", {"n": 1, "require_approval": True})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert "no revision loop" in result.error["message"]


async def test_approval_revise_reruns_downstream_steps_honouring_conditions() -> None:
    data = loop_definition()
    data["transitions"].append(
        {"kind": "conditional", "from": "judge", "to": "after", "condition": "state.revision_count >= 4"}
    )
    orch = graph_orchestrator(data, extra=EXTRA)
    ctx = InMemoryDurableContext()
    ctx.signal(APPROVAL_PROMISE, {"decision": "revise", "feedback": "one more"})
    ctx.signal(APPROVAL_PROMISE, {"decision": "approve"})
    result = await orch.run(ctx, "loop", {"text": "!!!", "require_approval": True})
    assert result.state is WorkflowState.COMPLETED
    assert result.revisions == 1
    assert "step:after" not in ctx.executed and "step:after:1" not in ctx.executed
    assert ctx.executed[-2:] == ["step:shout:1", "step:judge:1"]
