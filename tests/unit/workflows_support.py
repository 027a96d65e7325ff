"""Helpers shared by the tests/unit/test_workflows_*.py files."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ecl.core import LlmCall, StateChange, StepFinished, StepStarted, Success, WorkflowState
from ecl.llm import CompletionRequest, MockLlmProvider
from ecl.steps import Step, StepContext, StepRegistry
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, builtin_steps, parse_definition

PASS = json.dumps({"critique": "good", "decision": "pass", "feedback": None})


def revise(feedback: str = "add detail") -> str:
    """A critique asking for a revision."""
    return json.dumps({"critique": "weak", "decision": "revise", "feedback": feedback})


def kind_of(request: CompletionRequest) -> str:
    """generate, critique or revise: which built-in step sent the request."""
    text = request.messages[-1].content
    if '"decision"' in text:
        return "critique"
    if "Feedback:" in text:
        return "revise"
    return "generate"


def scripted(critiques: list[str], *, drafts: Callable[[int], str] | None = None) -> Callable[[CompletionRequest], str]:
    """Generate -> 'draft 0'; the k-th revise -> 'draft k'; critiques in order (the last repeats)."""
    state = {"critique": 0, "revise": 0}
    draft = drafts or (lambda k: f"draft {k}")

    def respond(request: CompletionRequest) -> str:
        kind = kind_of(request)
        if kind == "critique":
            reply = critiques[min(state["critique"], len(critiques) - 1)]
            state["critique"] += 1
            return reply
        if kind == "revise":
            state["revise"] += 1
            return draft(state["revise"])
        return draft(0)

    return respond


async def no_sleep(_: float) -> None:
    """Retry backoff without waiting."""


def critique_orchestrator(llm: MockLlmProvider, **kwargs: Any) -> WorkflowOrchestrator:
    """The built-in definitions and steps on ``llm``, with instant retries."""
    return WorkflowOrchestrator(DefinitionRegistry.with_builtins(), builtin_steps(), llm, sleep=no_sleep, **kwargs)


class Num(BaseModel):
    """A number."""

    value: int


class AddOne(Step[Num, Num]):
    """value + 1, after a short wait; remembers how many run at once."""

    id = "add"
    name = "Add one"
    input_model = Num
    output_model = Num
    running = 0
    peak = 0
    delay = 0.02

    async def execute(self, ctx: StepContext, input: Num) -> Success[Num]:
        """Adds one."""
        AddOne.running += 1
        AddOne.peak = max(AddOne.peak, AddOne.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            AddOne.running -= 1
        return Success(Num(value=input.value + 1))


def graph(transitions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """a -> (b, c) ; b -> d (by a sequential transition unless ``transitions`` is given)."""
    return {
        "id": "fan",
        "name": "Fan out",
        "steps": [
            {"step_id": "a", "step": "add", "input": {"value": "$input.n"}},
            {"step_id": "b", "step": "add", "depends_on": ["a"], "input": {"value": "$steps.a.value"}},
            {"step_id": "c", "step": "add", "depends_on": ["a"], "input": {"value": "$steps.a.value"}},
            {"step_id": "d", "step": "add", "input": {"value": "$steps.b.value"}},
        ],
        "transitions": transitions if transitions is not None else [{"kind": "sequential", "from": "b", "to": "d"}],
    }


def graph_orchestrator(*definitions: dict[str, Any], extra: list[Step[Any, Any]] | None = None) -> WorkflowOrchestrator:
    """An orchestrator over AddOne (plus ``extra``) and the given raw definitions."""
    steps = StepRegistry([AddOne(), *(extra or [])])
    registry = DefinitionRegistry(steps, [parse_definition(d, steps) for d in definitions])
    return WorkflowOrchestrator(registry, steps, MockLlmProvider(["unused"]), sleep=no_sleep)


class RecordingRecorder:
    """A WorkflowRecorder that remembers everything."""

    def __init__(self) -> None:
        self.states: list[tuple[WorkflowState, dict[str, Any]]] = []
        self.started: list[dict[str, Any]] = []
        self.finished: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    async def step_started(self, step: StepStarted) -> str:
        """Remember the start."""
        self.started.append(
            {"step_id": step.step_id, "attempt": step.attempt, "iteration": step.iteration, "input": step.input}
        )
        return f"x{len(self.started)}"

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Remember the end."""
        self.finished.append({"id": execution_id, "state": result.state, "error": result.error})

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Remember the request going out."""
        self.sent.append(dataclasses.asdict(call))

    async def llm_call(self, call: LlmCall) -> None:
        """Remember the call."""
        self.calls.append(dataclasses.asdict(call))

    async def workflow_state(self, change: StateChange) -> None:
        """Remember the state change."""
        extra = {"output": change.output, "error": change.error, "revision_count": change.revision_count}
        self.states.append((change.state, extra))

    @property
    def state_names(self) -> list[str]:
        """The states, in order, as strings."""
        return [s.value for s, _ in self.states]
