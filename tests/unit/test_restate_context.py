"""How ECL's errors, retry policies and cancellation cross the Restate boundary (no server)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from restate import TerminalError

from ecl.core import RetryPolicy
from ecl.core.errors import (
    DefinitionError,
    EngineError,
    LlmError,
    MaxRevisionsExceeded,
    StepError,
    StepValidationError,
    WorkflowCancelled,
)
from ecl.engines.restate import context as rc
from ecl.engines.restate.server import find_server_binary
from ecl.engines.restate.service import SERVICE_NAME

ERRORS = [
    StepValidationError("bad output", step_id="critique", errors=[{"field": "decision", "message": "missing"}]),
    MaxRevisionsExceeded("still revising", attempts=3, step_id="critique"),
    LlmError("slow down", kind="rate_limited", status_code=429, retryable=True, retry_after=2.5, step_id="generate"),
    DefinitionError("no such step", definition_id="d"),
    StepError("it's \"quoted\" and 'single' \\ back", step_id="s"),
]


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_terminal_errors_round_trip_with_type_and_fields(err: Any) -> None:
    back = rc.from_terminal(rc.to_terminal(err))
    assert type(back) is type(err)
    assert back.to_dict() == err.to_dict()


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_exhausted_retries_keep_the_error(err: Any) -> None:
    """Restate fails the run with the last attempt's ``repr``, possibly wrapped in more text."""
    text = repr(rc._RetryableFailure(err))
    back = rc.from_terminal(TerminalError(f"Retries exhausted. Last failure: {text} (attempt 3)", 500))
    assert type(back) is type(err)
    assert back.to_dict() == err.to_dict()


def test_a_foreign_terminal_error_becomes_a_step_error() -> None:
    back = rc.from_terminal(TerminalError("ValueError('boom')", 500))
    assert type(back) is StepError
    assert back.message == "ValueError('boom')"
    broken = rc.from_terminal(TerminalError("ecl-error:{not json", 500))
    assert type(broken) is StepError


def test_cancellation_is_recognised() -> None:
    assert rc.is_cancellation(TerminalError("cancelled", 409))
    assert not rc.is_cancellation(TerminalError("cancelled", 500))
    assert not rc.is_cancellation(TerminalError("conflict", 409))


def test_retry_policy_maps_onto_run_options() -> None:
    assert rc._run_options(None).max_attempts is None  # Restate's invocation retries apply
    assert rc._run_options(RetryPolicy.none()).max_attempts is None
    policy = RetryPolicy(
        max_attempts=4, initial_delay=timedelta(seconds=0.5), max_delay=timedelta(seconds=8), multiplier=3
    )
    options = rc._run_options(policy)
    assert options.max_attempts == 4
    assert options.initial_retry_interval == timedelta(seconds=0.5)
    assert options.max_retry_interval == timedelta(seconds=8)
    assert options.retry_interval_factor == 3


class _Cancelled:
    def __await__(self) -> Any:
        raise TerminalError("cancelled", 409)
        yield  # pragma: no cover


class _FakePromise:
    def value(self) -> _Cancelled:
        return _Cancelled()


class _FakeContext:
    """Just enough of a Restate WorkflowContext whose invocation was cancelled."""

    def key(self) -> str:
        return "wf-1"

    def promise(self, name: str, type_hint: Any = None) -> _FakePromise:
        return _FakePromise()

    def sleep(self, delta: timedelta) -> _Cancelled:
        return _Cancelled()

    def run_typed(self, name: str, action: Any, options: Any) -> _Cancelled:
        return _Cancelled()


@pytest.mark.parametrize("operation", ["promise", "sleep", "run"])
async def test_cancellation_unwinds_as_an_engine_signal(operation: str) -> None:
    ctx = rc.RestateDurableContext(_FakeContext())  # type: ignore[arg-type]

    async def noop() -> None:
        return None

    calls = {
        "promise": lambda: ctx.promise("approval"),
        "sleep": lambda: ctx.sleep(timedelta(seconds=1)),
        "run": lambda: ctx.run("step:x", noop),
    }

    async def user_code() -> str:
        try:
            await calls[operation]()
        except Exception:  # what user code may write: the signal must pass through
            return "swallowed"
        return "returned"

    with pytest.raises(WorkflowCancelled) as caught:
        await user_code()
    assert caught.value.workflow_id == "wf-1"


def test_the_service_name_is_pinned() -> None:
    assert SERVICE_NAME == "EclWorkflow"


def test_a_configured_binary_that_does_not_exist_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="make setup"):
        find_server_binary(str(tmp_path / "nowhere" / "restate-server"))
