"""The rules every engine shares, written once.

The embedded engine, the Restate engine (client and service), the HTTP API and the CLI all
apply these; none of them repeats one. Like the rest of ``core`` they do no I/O: an engine
reads what it has stored and asks here what that means.

- :func:`submission_hash` and :func:`check_same_submission`: a submission is idempotent on
  its workflow id; the same id with another definition or input is a conflict;
- :func:`validate_input`: a workflow's input must satisfy its definition's input model
  (checked at submission, before anything is stored);
- :func:`check_takes_signals`: an ended workflow takes no signals;
- :func:`promise_name` and :func:`next_round`: repeated waits on one promise (approval
  rounds) are ``name``, ``name#2``, ``name#3``...; a signal resolves the first round not
  yet resolved;
- :func:`cancelled_result` and :func:`result_from_stored`: the result of a cancelled
  workflow, and the result of an ended workflow read back from its stored row.

Whether a state is final is :attr:`~ecl.core.state.WorkflowState.is_terminal`
(:func:`~ecl.core.state.workflow_is_active` is its negation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ecl.core.errors import ConflictError, FieldError, InputValidationError
from ecl.core.json_values import JsonLimits, check_json
from ecl.core.results import WorkflowResult
from ecl.core.state import WorkflowState

__all__ = [
    "APPROVAL_PROMISE",
    "CANCELLED_ERROR",
    "HasInputModel",
    "cancelled_result",
    "check_same_submission",
    "check_takes_signals",
    "field_errors",
    "next_round",
    "promise_name",
    "result_from_stored",
    "submission_hash",
    "validate_input",
]

_STORABLE = JsonLimits(max_depth=200, max_string_chars=2**62)
"""What any input must satisfy to be stored: the API's own limits (``api.max_json_depth`` is
at most 200) are tighter; strings are bounded only there."""

APPROVAL_PROMISE = "approval"
"""The promise human approval waits on (round 1; later rounds: :func:`promise_name`)."""

CANCELLED_ERROR: dict[str, Any] = {"type": "WorkflowCancelled", "message": "cancelled"}
"""The ``error`` stored with a cancelled workflow (compatibility data)."""


class HasInputModel(Protocol):
    """What a registry returns for a workflow id: anything that names its input model
    (a graph :class:`~ecl.workflows.WorkflowDefinition`, a code-first workflow)."""

    @property
    def input_model(self) -> type[BaseModel] | None:
        """The pydantic model a workflow's input must satisfy (``None``: any JSON object)."""
        ...


def submission_hash(definition_id: str, input: dict[str, Any]) -> str:
    """Canonical hash of a submission (definition id and input), for idempotency checks.

    Stored with the workflow; the format is compatibility data.
    """
    canonical = json.dumps([definition_id, input], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_same_submission(
    workflow_id: str,
    *,
    definition_id: str,
    digest: str,
    stored_definition_id: str,
    stored_digest: str,
) -> None:
    """Raise :class:`ConflictError` unless a resubmission matches the stored workflow."""
    if stored_definition_id != definition_id or stored_digest != digest:
        raise ConflictError(
            f"workflow {workflow_id} already exists with a different definition or input",
            id=workflow_id,
        )


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """``[{"field": "a.b", "message": ..., "value": ...}]`` for every problem."""
    errors: list[FieldError] = []
    for error in exc.errors():
        # A missing field's "input" is its parent object: not the value at fault.
        value = None if error["type"] == "missing" else error.get("input")
        if not isinstance(value, str | int | float | bool | type(None)):
            value = repr(value)[:200]
        elif isinstance(value, str):
            value = value[:200]
        path = ".".join(str(p) for p in error["loc"])
        errors.append(
            {
                "field": ".".join(p for p in (prefix, path) if p) or "(root)",
                "message": error["msg"],
                "value": value,
            }
        )
    return errors


def validate_input(definition_id: str, model: type[BaseModel] | None, input: Any) -> None:
    """Raise :class:`InputValidationError` (naming every bad field and its value) unless
    ``input`` is a JSON object that satisfies ``model`` (any object when ``model`` is None).

    Only a check: the input is stored as given, so its submission hash does not change.
    The JSON rules of :mod:`ecl.core.json_values` apply to input from Python too (no lone
    surrogate, NUL, ``NaN`` or 64-bit overflow); size is bounded only at the doors (API, CLI).
    """
    if not isinstance(input, dict):
        raise InputValidationError(
            f"workflow input must be a JSON object, got {type(input).__name__}",
            errors=[{"field": "input", "message": "must be an object", "value": repr(input)[:200]}],
        )
    check_json(input, _STORABLE, field="input")  # no row that a reader cannot serve back
    if model is None:
        return
    try:
        model.model_validate(input)
    except ValidationError as exc:
        errors = field_errors(exc, prefix="input")
        problems = "; ".join(
            f"{e['field']}: {e['message']}" + ("" if raw["type"] == "missing" else f" (got {e['value']!r})")
            for e, raw in zip(errors, exc.errors(), strict=True)
        )
        raise InputValidationError(f"invalid input for {definition_id}: {problems}", errors=errors) from None


def check_takes_signals(workflow_id: str, state: WorkflowState) -> None:
    """Raise :class:`ConflictError` when the workflow has ended: it takes no signals."""
    if state.is_terminal:
        raise ConflictError(f"workflow {workflow_id} has ended ({state.value}); it takes no signals", id=workflow_id)


def promise_name(base: str, round_: int) -> str:
    """The promise of round ``round_`` (1-based): ``approval``, ``approval#2``...

    Persisted (journal and promise names): never change the format.
    """
    return base if round_ <= 1 else f"{base}#{round_}"


def next_round(base: str, resolved: Collection[str]) -> str:
    """The first round of ``base`` whose promise is not in ``resolved``: what a signal resolves."""
    round_ = 1
    while promise_name(base, round_) in resolved:
        round_ += 1
    return promise_name(base, round_)


def cancelled_result(workflow_id: str, definition_id: str) -> WorkflowResult:
    """The result of a cancelled workflow."""
    return WorkflowResult(
        workflow_id=workflow_id,
        definition_id=definition_id,
        state=WorkflowState.CANCELLED,
        error=dict(CANCELLED_ERROR),
    )


def result_from_stored(
    *,
    workflow_id: str,
    definition_id: str,
    state: WorkflowState | str,
    output: Any,
    error: Any,
    revision_count: int | None,
) -> WorkflowResult:
    """The result of an ended workflow from its stored row.

    The row's ``output`` holds the whole result when the run wrote it; the row's state wins
    over the one inside it (a cancellation recorded after the run's own write). Without
    it (cancelled before it ran) the result is rebuilt from the row's columns.
    """
    final = WorkflowState(state)
    if isinstance(output, dict) and "workflow_id" in output and "state" in output:
        result = WorkflowResult.model_validate(output)
        if result.state is not final:
            result = result.model_copy(update={"state": final})
        return result
    return WorkflowResult(
        workflow_id=workflow_id,
        definition_id=definition_id,
        state=final,
        error=error,
        revisions=revision_count or 0,
    )
