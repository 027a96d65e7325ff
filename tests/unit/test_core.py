"""Core types: errors, results, ids, state machine — round-trips proved with Hypothesis."""

from __future__ import annotations

import json
import pickle
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecl.core import (
    ConfigError,
    EclError,
    EngineSignal,
    IllegalTransitionError,
    InputValidationError,
    LlmError,
    MaxRevisionsExceeded,
    NonDeterminismError,
    RetryPolicy,
    StepError,
    StepIoError,
    StepMetadata,
    StepTimeoutError,
    StepValidationError,
    Success,
    TokenUsage,
    WorkflowCancelled,
    WorkflowResult,
    WorkflowState,
    check_transition,
    error_from_dict,
    new_workflow_id,
    parse_state,
    parse_workflow_id,
    step_result_from_dict,
    step_result_to_dict,
)
from ecl.core.ids import new_record_id
from ecl.core.results import Failed, NeedsRevision

text = st.text(max_size=50)
kinds = st.sampled_from(["rate_limited", "overloaded", "server", "auth", "bad_request", "timeout", "connection"])

errors = st.one_of(
    st.builds(
        LlmError,
        text,
        kind=kinds,
        status_code=st.none() | st.integers(100, 599),
        retryable=st.booleans(),
        retry_after=st.none() | st.floats(0, 100, allow_nan=False),
        attempts=st.integers(1, 10),
        step_id=st.none() | text,
    ),
    st.builds(
        StepValidationError,
        text,
        errors=st.lists(st.fixed_dictionaries({"field": text, "message": text}), max_size=3),
        step_id=st.none() | text,
        retryable=st.booleans(),
    ),
    st.builds(StepIoError, text, step_id=st.none() | text),
    st.builds(StepTimeoutError, text, timeout_seconds=st.none() | st.floats(0, 10, allow_nan=False)),
    st.builds(MaxRevisionsExceeded, text, attempts=st.integers(0, 10), step_id=st.none() | text),
    st.builds(ConfigError, text, key=text, value=st.none() | text | st.integers(), source=text),
    st.builds(NonDeterminismError, text, workflow_id=text, position=st.integers(0, 99)),
)


@given(errors)
def test_errors_round_trip_through_json_and_pickle(error: EclError) -> None:
    data = json.loads(json.dumps(error.to_dict()))
    again = error_from_dict(data)
    assert type(again) is type(error)
    assert again == error
    assert again.to_dict() == error.to_dict()
    assert pickle.loads(pickle.dumps(error)) == error


def test_error_fields_and_families() -> None:
    err = MaxRevisionsExceeded("too many", attempts=3, step_id="critique")
    assert err.attempts == 3
    assert not err.retryable
    assert isinstance(err, StepError)
    assert isinstance(err, EclError)
    assert "MaxRevisionsExceeded" in repr(err)
    unknown = error_from_dict({"type": "FromTheFuture", "message": "hi"})
    assert type(unknown) is EclError
    assert unknown.message == "hi"


def _user_code() -> None:
    try:
        raise WorkflowCancelled("w")
    except Exception:  # a user's catch-all must not swallow engine control flow
        pytest.fail("swallowed")


def test_engine_signals_escape_except_exception() -> None:
    with pytest.raises(WorkflowCancelled):
        _user_code()
    assert issubclass(WorkflowCancelled, EngineSignal)


outputs = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


@given(outputs, text, st.booleans())
def test_step_results_round_trip(output: object, feedback: str, retryable: bool) -> None:
    for result in (
        Success(output),
        NeedsRevision(output, feedback),
        Failed(StepError("x", retryable=retryable), retryable),
    ):
        encoded = json.loads(json.dumps(step_result_to_dict(result)))
        again = step_result_from_dict(encoded)
        assert step_result_to_dict(again) == step_result_to_dict(result)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_token_usage_adds_and_round_trips(a: int, b: int, c: int, d: int) -> None:
    usage = TokenUsage(input=a, output=b, cache_creation=c, cache_read=d)
    assert usage.total == a + b + c + d
    assert (usage + usage).total == 2 * usage.total
    assert TokenUsage.model_validate_json(usage.model_dump_json()) == usage


def test_metadata_and_result_serialise() -> None:
    start = datetime.now(UTC)
    meta = StepMetadata(step_id="generate", started_at=start, completed_at=start + timedelta(seconds=1))
    assert meta.duration_ms == pytest.approx(1000)
    result = WorkflowResult(workflow_id="w", definition_id="d", state=WorkflowState.COMPLETED, steps=[meta])
    assert WorkflowResult.model_validate_json(result.model_dump_json()) == result


def test_ids() -> None:
    a, b = new_workflow_id(), new_workflow_id()
    assert a != b
    assert len(a) == 36
    assert parse_workflow_id("order-42") == "order-42"
    for bad in ["", "../x", "a b", "x" * 200]:
        with pytest.raises(InputValidationError) as info:
            parse_workflow_id(bad)
        assert info.value.errors[0]["field"] == "workflow_id"


def test_record_ids_are_uuid7_hex_in_creation_order() -> None:
    earlier = new_record_id()
    time.sleep(0.002)  # the next millisecond at least
    later = [new_record_id() for _ in range(100)]
    for value in (earlier, *later):
        parsed = uuid.UUID(hex=value)
        assert value == parsed.hex and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert len(set(later)) == len(later)
    assert all(earlier < value for value in later)  # a new row's key sorts after older ones
    assert uuid.UUID(new_workflow_id()).version == 7


def test_state_machine() -> None:
    check_transition("w", WorkflowState.PENDING, WorkflowState.RUNNING)
    check_transition("w", WorkflowState.RUNNING, WorkflowState.WAITING_FOR_REVISION)
    with pytest.raises(IllegalTransitionError) as info:
        check_transition("w", WorkflowState.COMPLETED, WorkflowState.RUNNING)
    assert info.value.from_state == "completed"
    assert "completed to running" in str(info.value)
    assert parse_state("failed") is WorkflowState.FAILED
    with pytest.raises(InputValidationError, match="expected one of"):
        parse_state("done")


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(max_attempts=4, initial_delay=timedelta(seconds=1), max_delay=timedelta(seconds=3))
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    assert RetryPolicy.none().max_attempts == 1


def test_share_fields_set_shares_only_a_set_naming_every_field() -> None:
    from ecl.core.metadata import StepMetadata, share_fields_set

    now = datetime.now(UTC)
    every = {
        "step_id": "s",
        "started_at": now,
        "completed_at": now,
        "attempt": 1,
        "llm_tokens_used": None,
        "llm_calls": 0,
        "spent_tokens": 0,
        "llm_models": [],
    }
    a = share_fields_set(StepMetadata(**every, cost_usd=0))
    b = share_fields_set(StepMetadata(**every, cost_usd=1))
    assert a.model_fields_set is b.model_fields_set == set(StepMetadata.model_fields)
    a.attempt = 2  # assigning a field adds a name the shared set holds already
    assert b.model_fields_set == set(StepMetadata.model_fields)
    partial = share_fields_set(StepMetadata(step_id="s", started_at=now))
    assert partial.model_fields_set == {"step_id", "started_at"}
    assert partial.model_fields_set is not a.model_fields_set
    assert a.model_dump() == StepMetadata(**every, cost_usd=0).model_copy(update={"attempt": 2}).model_dump()


def test_built_makes_what_validation_makes_of_values_of_the_field_types() -> None:
    from decimal import Decimal

    from pydantic import BaseModel, field_validator

    from ecl.core.metadata import NO_TOKENS, StepMetadata, built
    from ecl.steps import StepExecution, TraceEvent

    now = datetime.now(UTC)
    fields = {
        "step_id": "s",
        "started_at": now,
        "completed_at": now,
        "attempt": 2,
        "llm_tokens_used": NO_TOKENS,
        "llm_calls": 1,
        "cost_usd": Decimal("0.25"),
        "spent_tokens": 3,
        "llm_models": ["m"],
    }
    meta, validated = built(StepMetadata, **fields), StepMetadata(**fields)
    assert meta == validated and meta.model_dump(mode="json") == validated.model_dump(mode="json")
    assert repr(meta) == repr(validated)
    assert meta.model_fields_set is built(StepMetadata, **fields).model_fields_set == set(StepMetadata.model_fields)
    trace = {"kind": "started", "at": now, "attempt": 1, "detail": {"iteration": 0}}
    traces = [built(TraceEvent, **trace)]
    assert traces[0] == TraceEvent(**trace)
    run = {"step_id": "s", "output": {"x": 1}, "feedback": None, "metadata": meta, "traces": traces}
    execution = built(StepExecution, **run)
    assert execution == StepExecution(**run)
    assert execution.journal() == StepExecution(**run).model_dump(mode="json")
    with pytest.raises(TypeError, match="every field"):
        built(TraceEvent, kind="started", at=now)
    with pytest.raises(TypeError, match="every field"):
        built(TraceEvent, at=now, kind="started", attempt=1, detail={})

    class Checked(BaseModel):
        x: int

        @field_validator("x")
        @classmethod
        def positive(cls, value: int) -> int:
            return abs(value)

    with pytest.raises(TypeError, match="validates more"):
        built(Checked, x=-1)
