"""The rules every engine shares (``ecl.core.rules``) and a definition's input model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from ecl.core.errors import ConflictError, InputValidationError
from ecl.core.results import StepResult, Success, WorkflowResult
from ecl.core.rules import (
    APPROVAL_PROMISE,
    cancelled_result,
    check_same_submission,
    check_takes_signals,
    next_round,
    promise_name,
    result_from_stored,
    submission_hash,
    validate_input,
)
from ecl.core.state import ACTIVE_STATES, TERMINAL_STATES, WorkflowState, workflow_is_active
from ecl.steps import Step, StepContext, StepRegistry
from ecl.workflows import (
    Conditional,
    DefinitionRegistry,
    StepDefinition,
    WorkflowDefinition,
    critique_revise_definition,
    validate_definition,
)


def test_submission_hash_is_pinned() -> None:
    # Stored with every workflow and compared on resubmission: the format is compatibility data.
    digest = submission_hash("critique-revise", {"topic": "Rust", "require_approval": True})
    assert digest == "26764d0fa9edf2d2714f6c1713cf267a3fe622f161bc3e20a39aa6a9a5428d71"
    assert submission_hash("critique-revise", {"require_approval": True, "topic": "Rust"}) == digest
    assert submission_hash("other", {"topic": "Rust", "require_approval": True}) != digest


def test_resubmission_with_another_body_is_a_conflict() -> None:
    digest = submission_hash("d", {"a": 1})
    check_same_submission("w", definition_id="d", digest=digest, stored_definition_id="d", stored_digest=digest)
    with pytest.raises(ConflictError, match="workflow w already exists with a different definition or input"):
        check_same_submission("w", definition_id="d", digest="x", stored_definition_id="d", stored_digest=digest)
    with pytest.raises(ConflictError):
        check_same_submission("w", definition_id="e", digest=digest, stored_definition_id="d", stored_digest=digest)


def test_states_and_signals() -> None:
    assert set(TERMINAL_STATES) == {"completed", "failed", "cancelled"}
    assert set(ACTIVE_STATES) | set(TERMINAL_STATES) == {s.value for s in WorkflowState}
    assert workflow_is_active("waiting_for_revision") and not workflow_is_active(WorkflowState.FAILED)
    for state in WorkflowState:
        if state.is_terminal:
            with pytest.raises(ConflictError, match=f"has ended \\({state.value}\\); it takes no signals"):
                check_takes_signals("w", state)
        else:
            check_takes_signals("w", state)


def test_promise_rounds() -> None:
    assert [promise_name(APPROVAL_PROMISE, n) for n in (1, 2, 3)] == ["approval", "approval#2", "approval#3"]
    assert next_round("approval", set()) == "approval"
    assert next_round("approval", {"approval", "approval#2"}) == "approval#3"
    assert next_round("other", {"approval"}) == "other"


def test_results_from_stored_rows() -> None:
    cancelled = cancelled_result("w", "d")
    assert cancelled.state is WorkflowState.CANCELLED
    assert cancelled.error == {"type": "WorkflowCancelled", "message": "cancelled"}
    full = WorkflowResult(workflow_id="w", definition_id="d", state=WorkflowState.COMPLETED, outputs={"a": 1})
    stored: dict[str, Any] = {"workflow_id": "w", "definition_id": "d", "error": None, "revision_count": 2}
    # The row's state wins over the one inside the stored result (cancelled after the run's write).
    again = result_from_stored(state="cancelled", output=full.model_dump(mode="json"), **stored)
    assert again.state is WorkflowState.CANCELLED and again.outputs == {"a": 1}
    bare = result_from_stored(state="failed", output=None, **{**stored, "error": {"type": "X"}})
    assert (bare.state, bare.error, bare.revisions) == (WorkflowState.FAILED, {"type": "X"}, 2)


def test_critique_revise_input_model() -> None:
    model = DefinitionRegistry.with_builtins().get("critique-revise").input_model
    validate_input("critique-revise", model, {"topic": "Rust"})
    validate_input("critique-revise", model, {"topic": "Rust", "require_approval": True})
    cases: list[tuple[Any, str]] = [
        ({"topic": ""}, "input.topic"),
        ({}, "input.topic"),
        ({"topic": 3}, "input.topic"),
        ({"topic": "x" * 501}, "input.topic"),
        ({"topic": "Rust", "tpoic": "Rust"}, "input.tpoic"),
        ({"topic": "Rust", "require_approval": "maybe"}, "input.require_approval"),
        (["topic"], "input"),
    ]
    for data, field in cases:
        with pytest.raises(InputValidationError) as caught:
            validate_input("critique-revise", model, data)
        assert caught.value.message.startswith("invalid input for critique-revise: " if field != "input" else "")
        assert field in caught.value.message
        assert field in [e["field"] for e in caught.value.errors]
    validate_input("anything", None, {"whatever": 1})


@pytest.mark.parametrize(
    ("value", "needle"),
    [("\ud800", "surrogate"), ("a\x00b", "NUL"), (float("nan"), "NaN"), (2**64, "64"), ({"a": [1]}, None)],
)
def test_input_from_python_follows_the_json_rules(value: Any, needle: str | None) -> None:
    """Input submitted from Python (``engine.run``) cannot store a row no reader can serve."""
    if needle is None:
        validate_input("anything", None, {"x": value})
        return
    with pytest.raises(InputValidationError) as caught:
        validate_input("anything", None, {"x": value})
    assert caught.value.message.startswith("input.x = ")
    assert needle in caught.value.message


class _In(BaseModel):
    count: int = Field(ge=1)
    label: str = "x"


class _Out(BaseModel):
    count: int


class _Count(Step[_In, _Out]):
    id = "count"
    name = "Count"
    input_model = _In
    output_model = _Out

    async def execute(self, ctx: StepContext, input: _In) -> StepResult[_Out]:
        return Success(_Out(count=input.count))


def test_input_model_derived_from_references_conditions_and_literals() -> None:
    defn = WorkflowDefinition(
        id="demo.v2",
        name="Demo",
        steps=[
            StepDefinition(step_id="a", step="count", input={"count": "$input.n", "label": "$input.label"}),
            StepDefinition(step_id="b", step="count", input={"count": 1, "label": "$input.meta.name"}),
            StepDefinition(step_id="c", step="count", depends_on=["a"], input={"count": "$input.n"}),
        ],
        transitions=[Conditional(**{"from": "a", "to": "c", "condition": 'input.mode == "full"'})],
    )
    model = validate_definition(defn, StepRegistry([_Count()])).input_model
    assert model.__name__ == "DemoV2Input"
    fields = model.model_fields
    assert set(fields) == {"n", "label", "meta", "mode", "require_approval", "budget_usd", "budget_tokens"}
    assert fields["n"].is_required() and not fields["label"].is_required()
    validate_input("demo.v2", model, {"n": 2, "meta": {"name": "m"}, "mode": "full"})
    with pytest.raises(InputValidationError, match=r"input\.n: Input should be greater than or equal to 1"):
        validate_input("demo.v2", model, {"n": 0})
    # The model is a cache beside the fields: equality and serialisation do not see it.
    fresh = critique_revise_definition()
    validated = DefinitionRegistry.with_builtins().get("critique-revise")
    assert fresh == validated and fresh.model_dump() == validated.model_dump()
    # Before validation the types are unknown, but the field names are not.
    assert set(fresh.input_model.model_fields) == {"topic", "require_approval", "budget_usd", "budget_tokens"}
