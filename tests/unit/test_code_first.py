"""Code-first workflows and ``@ecl.step`` functions, on the in-memory durable context."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import ecl
from ecl.core import NonDeterminismError, WorkflowState
from ecl.llm import MockLlmProvider
from ecl.steps import FunctionStep, StepRegistry
from ecl.testing import InMemoryDurableContext
from ecl.workflows import WorkflowCatalog
from tests.unit.workflows_support import PASS, RecordingRecorder, kind_of, no_sleep, revise, scripted


def runner(llm: MockLlmProvider | None = None, *workflows: Any) -> Any:
    """A catalog orchestrator over the built-ins plus ``workflows``, with instant retries."""
    catalog = WorkflowCatalog.build(entry_points=False, workflows=workflows)
    orchestrator = catalog.orchestrator(llm or MockLlmProvider(["unused"]))
    orchestrator.graph.executor._sleep = no_sleep
    return orchestrator


# ---------------------------------------------------------------- steps as functions


class Shout(BaseModel):
    """A loud text."""

    text: str
    length: int


@ecl.step
async def shout(ctx: ecl.StepContext, text: str, times: int = 1) -> Shout:
    """Upper-case the text."""
    loud = (text.upper() + " ") * times
    return Shout(text=loud.strip(), length=len(loud.strip()))


@ecl.step(name="count-words", retry=ecl.RetryPolicy(max_attempts=1))
async def count_words(ctx: ecl.StepContext, text: str) -> int:
    """A plain (non-model) return value."""
    return len(text.split())


def test_a_function_step_infers_its_models_from_the_signature() -> None:
    impl = shout.step
    assert isinstance(impl, FunctionStep)
    assert impl.id == "shout"
    assert impl.description == "Upper-case the text."
    assert list(impl.input_model.model_fields) == ["text", "times"]
    assert impl.input_model.model_fields["times"].default == 1
    assert impl.output_model is Shout
    counted = count_words.step
    assert counted.id == "count-words"
    assert counted.retry_policy.max_attempts == 1
    assert list(counted.output_model.model_fields) == ["result"]


def test_a_class_step_infers_its_models_from_its_type_arguments() -> None:
    class In(BaseModel):
        a: int

    class Out(BaseModel):
        b: int

    class Double(ecl.Step[In, Out]):
        id = "double"

        async def execute(self, ctx: ecl.StepContext, input: In) -> ecl.Success[Out]:
            return ecl.Success(Out(b=input.a * 2))

    assert Double.input_model is In
    assert Double.output_model is Out
    from ecl.workflows.builtin.critique_revise import GenerateInput, GenerateOutput, GenerateStep

    assert GenerateStep.input_model is GenerateInput
    assert GenerateStep.output_model is GenerateOutput
    assert not hasattr(GenerateStep, "max_revisions")


def test_a_step_must_be_async_and_fully_annotated() -> None:
    def sync(ctx: ecl.StepContext, x: int) -> int:
        return x

    with pytest.raises(ecl.EclError, match="async function"):
        ecl.step(sync)  # type: ignore[type-var]

    async def loose(ctx: ecl.StepContext, x) -> int:  # type: ignore[no-untyped-def]
        return 1

    with pytest.raises(ecl.EclError, match="parameter 'x' needs a type annotation"):
        ecl.step(loose)


async def test_a_step_called_with_something_else_than_a_context_says_what_it_needs() -> None:
    with pytest.raises(TypeError, match="needs the workflow's context"):
        await shout("not a context", "x")  # type: ignore[arg-type]


# ---------------------------------------------------------------- a small workflow


@ecl.workflow("shouting")
async def shouting(ctx: ecl.WorkflowContext, text: str, times: int = 2) -> dict[str, Any]:
    """Shout, then count."""
    loud = await shout(ctx, text, times=times)
    words = await count_words(ctx, loud.text)
    again = await shout(ctx, loud.text)
    return {"loud": again.text, "words": words}


async def test_a_code_first_workflow_runs_its_steps_as_journaled_steps() -> None:
    ctx = InMemoryDurableContext("wf-1")
    recorder = RecordingRecorder()
    result = await runner(None, shouting).run(ctx, "shouting", {"text": "hi there"}, recorder=recorder)
    assert result.state is WorkflowState.COMPLETED, result.error
    assert result.output == {"loud": "HI THERE HI THERE", "words": 4}
    assert ctx.executed == ["step:shout", "step:count-words", "step:shout:1"]
    assert result.outputs["count-words"] == {"result": 4}
    assert [s.step_id for s in result.steps] == ["shout", "count-words", "shout"]
    assert [(r["step_id"], r["iteration"], r["input"]) for r in recorder.started] == [
        ("shout", 0, {"text": "hi there", "times": 2}),
        ("count-words", 0, {"text": "HI THERE HI THERE"}),
        ("shout", 1, {"text": "HI THERE HI THERE", "times": 1}),
    ]
    assert recorder.state_names == ["running", "completed"]


async def test_replay_returns_journaled_results_without_running_steps_again() -> None:
    calls: list[str] = []

    @ecl.step
    async def note(ctx: ecl.StepContext, text: str) -> str:
        calls.append(text)
        return text + "!"

    @ecl.workflow("noting")
    async def noting(ctx: ecl.WorkflowContext, text: str) -> str:
        first = await note(ctx, text)
        return await note(ctx, first)

    orchestrator = runner(None, noting)
    ctx = InMemoryDurableContext("wf-r")
    first = await orchestrator.run(ctx, "noting", {"text": "a"})
    again = await orchestrator.run(ctx.replay(), "noting", {"text": "a"})
    assert first.output == again.output == "a!!"
    assert calls == ["a", "a!"]


async def test_changed_code_on_replay_is_a_non_determinism_error_naming_the_step() -> None:
    @ecl.workflow("changing")
    async def before(ctx: ecl.WorkflowContext, text: str) -> str:
        loud = await shout(ctx, text)
        return loud.text

    @ecl.workflow("changing")
    async def after(ctx: ecl.WorkflowContext, text: str) -> int:
        return await count_words(ctx, text)

    ctx = InMemoryDurableContext("wf-nd")
    await runner(None, before).run(ctx, "changing", {"text": "a b"})
    with pytest.raises(NonDeterminismError, match="step:count-words") as info:
        await runner(None, after).run(ctx.replay(), "changing", {"text": "a b"})
    assert info.value.position == 0
    assert info.value.expected == "run step:shout"


async def test_gathered_steps_are_named_in_call_order_whatever_order_they_finish_in() -> None:
    finished: list[int] = []
    order = [1, 2, 0]  # the order the steps are let finish in (not the order they were called in)
    turn = asyncio.Condition()

    @ecl.step
    async def wait(ctx: ecl.StepContext, n: int) -> int:
        # Event-driven, not timed: step n finishes only after the steps before it in `order`.
        async with turn:
            await turn.wait_for(lambda: len(finished) == order.index(n))
            finished.append(n)
            turn.notify_all()
        return n * 10

    @ecl.workflow("fan")
    async def fan(ctx: ecl.WorkflowContext, count: int) -> list[int]:
        return list(await asyncio.gather(*(wait(ctx, i) for i in range(count))))

    orchestrator = runner(None, fan)
    ctx = InMemoryDurableContext("wf-g")
    result = await asyncio.wait_for(orchestrator.run(ctx, "fan", {"count": 3}), timeout=60)
    assert result.output == [0, 10, 20]
    assert finished == order  # they really ran at once, and finished out of call order
    assert ctx.operations == [("run", "step:wait"), ("run", "step:wait:1"), ("run", "step:wait:2")]
    again = await orchestrator.run(ctx.replay(), "fan", {"count": 3})
    assert again.output == [0, 10, 20]
    assert finished == order  # nothing ran again


async def test_the_durable_operations_pass_through_and_replay() -> None:
    @ecl.workflow("durable-ops")
    async def ops(ctx: ecl.WorkflowContext, name: str) -> dict[str, Any]:
        await ctx.set("seen", name)
        answer = await ctx.promise("approval")
        await ctx.sleep(timedelta(0))
        when = await ctx.now()
        uid = await ctx.uuid()
        raw = await ctx.run("raw", _forty_two)
        return {"answer": answer, "when": when.isoformat(), "uid": uid, "raw": raw, "state": await ctx.get("seen")}

    orchestrator = runner(None, ops)
    ctx = InMemoryDurableContext("wf-ops")
    task = asyncio.create_task(orchestrator.run(ctx, "durable-ops", {"name": "x"}))
    await ctx.until_waiting("approval")
    ctx.signal("approval", {"decision": "approve"})
    result = await task
    assert result.output["answer"] == {"decision": "approve"}
    assert result.output["raw"] == 42
    assert result.output["state"] == "x"
    again = await orchestrator.run(ctx.replay(), "durable-ops", {"name": "x"})
    assert again.output == result.output


async def _forty_two() -> int:
    return 42


# ---------------------------------------------------------------- bad input and bad results


async def test_a_step_input_that_does_not_validate_fails_the_run_naming_the_field() -> None:
    @ecl.workflow("bad-step-input")
    async def bad(ctx: ecl.WorkflowContext, text: str) -> int:
        return await count_words(ctx, text=123)  # type: ignore[arg-type]

    result = await runner(None, bad).run(InMemoryDurableContext(), "bad-step-input", {"text": "x"})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "StepValidationError"
    assert result.error["message"] == "step count-words: invalid input: text (Input should be a valid string)"
    assert result.error["step_id"] == "count-words"


async def test_a_workflow_input_that_does_not_validate_fails_the_run_naming_the_field() -> None:
    result = await runner(None, shouting).run(InMemoryDurableContext(), "shouting", {"text": "x", "times": "many"})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "InputValidationError"
    assert "times = 'many'" in result.error["message"]
    assert "\n" not in result.error["message"]


async def test_a_workflow_returning_a_non_json_value_fails_with_one_line() -> None:
    @ecl.workflow("not-json")
    async def not_json(ctx: ecl.WorkflowContext) -> Any:
        return object()

    @ecl.workflow("wrong-type")
    async def wrong_type(ctx: ecl.WorkflowContext) -> str:
        return 5  # type: ignore[return-value]

    result = await runner(None, not_json).run(InMemoryDurableContext(), "not-json", {})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    message = result.error["message"]
    assert message.startswith("workflow not-json returned a value that is not JSON (object): ")
    assert "\n" not in message
    result = await runner(None, wrong_type).run(InMemoryDurableContext(), "wrong-type", {})
    assert result.error is not None
    assert result.error["message"] == (
        "workflow wrong-type returned a value that does not match its return annotation (int): "
        "Input should be a valid string"
    )


async def test_an_exception_of_the_workflow_code_fails_the_run_and_names_it() -> None:
    @ecl.workflow("raising")
    async def raising(ctx: ecl.WorkflowContext) -> None:
        raise KeyError("missing")

    result = await runner(None, raising).run(InMemoryDurableContext(), "raising", {})
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["message"] == "workflow raising raised KeyError: 'missing'"


# ---------------------------------------------------------------- Critique-Revise in both forms


async def both_forms(critiques: list[str]) -> dict[str, Any]:
    """Run critique-revise and critique-revise-py on the same script; what each produced."""
    seen: dict[str, Any] = {}
    for definition_id in ("critique-revise", "critique-revise-py"):
        llm = MockLlmProvider(responder=scripted(critiques))
        ctx = InMemoryDurableContext("wf-cr")
        recorder = RecordingRecorder()
        result = await runner(llm).run(ctx, definition_id, {"topic": "Rust"}, recorder=recorder)
        seen[definition_id] = {
            "result": result,
            "operations": ctx.operations,
            "journal": {k: (status, _strip(v)) for k, (status, v) in ctx.journal.items()},
            "state": ctx.state,
            "started": recorder.started,
            "finished": [(f["state"], f["error"]) for f in recorder.finished],
            "states": [(s.value, extra["revision_count"]) for s, extra in recorder.states],
            "calls": [(c["provider"], c["model"], c["outcome"]) for c in recorder.calls],
            "requests": [kind_of(r) for r in llm.requests],
        }
    return seen


def _strip(payload: Any) -> Any:
    """A journaled step execution without its timings."""
    if isinstance(payload, dict) and "metadata" in payload:
        meta = {k: v for k, v in payload["metadata"].items() if k not in ("started_at", "completed_at")}
        return {**payload, "metadata": meta, "traces": [t["kind"] for t in payload["traces"]]}
    return payload


@pytest.mark.parametrize(
    "critiques",
    [[PASS], [revise("more"), revise("even more"), PASS], [revise("never")]],
    ids=["pass", "two-revisions", "max-revisions"],
)
async def test_code_first_critique_revise_matches_the_graph(critiques: list[str]) -> None:
    seen = await both_forms(critiques)
    graph, code = seen["critique-revise"], seen["critique-revise-py"]
    for key in ("operations", "journal", "state", "started", "finished", "states", "calls", "requests"):
        assert code[key] == graph[key], key
    g, c = graph["result"], code["result"]
    assert (c.state, c.outputs, c.revisions, c.tokens, c.cost_usd, c.error) == (
        g.state,
        g.outputs,
        g.revisions,
        g.tokens,
        g.cost_usd,
        g.error,
    )
    assert [s.step_id for s in c.steps] == [s.step_id for s in g.steps]
    if c.state is WorkflowState.COMPLETED:
        assert c.output == g.outputs["final"]["text"]


async def test_code_first_critique_revise_journal_names() -> None:
    seen = await both_forms([revise("more"), PASS])
    assert seen["critique-revise-py"]["operations"] == [
        ("run", "step:generate"),
        ("set", "current_draft"),
        ("run", "step:critique"),
        ("run", "step:revise:1"),
        ("set", "current_draft"),
        ("set", "revision_count"),
        ("run", "step:critique:1"),
        ("run", "step:final"),
    ]


# ---------------------------------------------------------------- the catalog


def test_the_catalog_lists_both_forms_with_their_input_models() -> None:
    catalog = WorkflowCatalog.build(entry_points=False, workflows=[shouting])
    assert catalog.ids() == ["critique-revise", "critique-revise-py", "shouting"]
    entry = catalog.get("shouting")
    assert entry.input_model.model_validate({"text": "x"}).model_dump() == {"text": "x", "times": 2}
    assert "shout" in catalog.steps and "count-words" in catalog.steps
    assert catalog.get("critique-revise-py").describe()["steps"] == [
        {"step_id": "generate"},
        {"step_id": "critique"},
        {"step_id": "revise"},
        {"step_id": "final"},
    ]


def test_a_step_function_is_usable_from_a_graph_definition() -> None:
    steps = StepRegistry([shout.step])
    catalog = WorkflowCatalog(steps)
    from ecl.workflows import parse_definition

    defn = parse_definition(
        {"id": "loud", "name": "Loud", "steps": [{"step_id": "shout", "input": {"text": "$input.text"}}]}, steps
    )
    catalog.add(defn)
    assert catalog.get("loud") is defn
