""":class:`~ecl.core.DurableContext` on a Restate workflow context.

How ECL's semantics map onto Restate's:

* ``run(name, fn, retry=policy)`` is ``ctx.run_typed(name, ...)``. Without a policy (the
  orchestrator's case: the step executor retries on its own) no run options are set, so an
  unexpected failure (a database hiccup, a bug) fails the *attempt* and Restate retries the
  invocation from its journal (at-least-once), while a :class:`~ecl.core.StepError` is final.
  With a policy, its attempts and backoff become :class:`restate.RunOptions`; a retryable
  ``StepError`` is retried by Restate, a non-retryable one (and any ``LlmError``, whose
  retries belong to the LLM layer: :mod:`ecl.core.policy`) is final at once.
* A final ``StepError`` (or any :class:`~ecl.core.UserError`) crosses Restate as a
  ``TerminalError`` carrying the error's JSON, journaled, so a replay raises the same
  :class:`~ecl.core.EclError` again, with its type and fields.
* A cancellation from Restate (``TerminalError`` 409 ``cancelled`` at any durable await)
  becomes :class:`~ecl.core.WorkflowCancelled`, an engine signal that no ``except Exception``
  in workflow code swallows.
* State is Restate's K/V state, promises are durable promises, ``sleep`` a durable timer,
  ``now``/``uuid`` come from Restate's journaled time and seeded random.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import restate
from restate import RunOptions, TerminalError

from ecl.core.durable import JsonValue
from ecl.core.errors import EclError, RuntimeFailure, StepError, WorkflowCancelled, error_from_dict
from ecl.core.policy import RetryPolicy, step_may_retry

__all__ = ["CANCELLED_STATUS", "RestateDurableContext", "from_terminal", "is_cancellation", "to_terminal"]

_MARK = "ecl-error:"
CANCELLED_STATUS = 409
"""The status code of the ``TerminalError`` Restate raises in a cancelled invocation."""

T = TypeVar("T")


def to_terminal(err: EclError) -> TerminalError:
    """An ECL error as a ``TerminalError`` that Restate journals (its JSON in the message)."""
    return TerminalError(_MARK + json.dumps(err.to_dict(), default=str), status_code=500)


def from_terminal(err: TerminalError) -> EclError:
    """The ECL error inside a ``TerminalError`` (else a :class:`StepError` with its message).

    Also finds the error when Restate wrapped the message (retries exhausted).
    """
    message = err.message
    at = message.find(_MARK)
    if at >= 0:
        try:
            data, _end = json.JSONDecoder().raw_decode(message, at + len(_MARK))
            return error_from_dict(data)
        except (ValueError, KeyError, TypeError):
            pass
    return StepError(message)


def is_cancellation(err: TerminalError) -> bool:
    """Whether Restate raised ``err`` because the invocation was cancelled."""
    return err.status_code == CANCELLED_STATUS and err.message == "cancelled"


class _RetryableFailure(Exception):
    """A retryable step failure handed to Restate's run retries.

    Restate journals ``repr()`` of a failed attempt and, once the attempts are used up, fails
    the run with that text: so the repr is the marked error JSON, and :func:`from_terminal`
    raises the original error type again.
    """

    def __init__(self, err: EclError) -> None:
        super().__init__(err.message)
        self.text = _MARK + json.dumps(err.to_dict(), default=str)

    def __repr__(self) -> str:
        return self.text


def _run_options(policy: RetryPolicy | None) -> RunOptions[Any]:
    if policy is None or policy.max_attempts <= 1:
        return RunOptions(type_hint=object)
    return RunOptions(
        type_hint=object,
        max_attempts=policy.max_attempts,
        initial_retry_interval=policy.initial_delay,
        max_retry_interval=policy.max_delay,
        retry_interval_factor=policy.multiplier,
    )


class RestateDurableContext:
    """The ECL durable operations, journaled by Restate."""

    def __init__(self, ctx: restate.WorkflowContext) -> None:
        self._ctx = ctx

    @property
    def workflow_id(self) -> str:
        """The Restate workflow key (the ECL workflow id)."""
        return self._ctx.key()

    @property
    def restate(self) -> restate.WorkflowContext:
        """The underlying Restate context."""
        return self._ctx

    async def _await(self, future: Awaitable[T]) -> T:
        try:
            return await future
        except TerminalError as err:
            if is_cancellation(err):
                raise WorkflowCancelled(self.workflow_id) from None
            raise

    async def run(
        self,
        name: str,
        fn: Callable[[], Awaitable[JsonValue]],
        *,
        retry: RetryPolicy | None = None,
    ) -> JsonValue:
        """Run ``fn`` once and journal its JSON result (see the module docstring)."""
        retrying = retry is not None and retry.max_attempts > 1

        async def action() -> Any:
            try:
                return await fn()
            except StepError as err:
                if retrying and step_may_retry(err):
                    raise _RetryableFailure(err) from err
                raise to_terminal(err) from err
            except RuntimeFailure:
                raise  # the machinery failed: let Restate retry
            except EclError as err:
                raise to_terminal(err) from err

        try:
            return await self._await(self._ctx.run_typed(name, action, _run_options(retry)))
        except TerminalError as err:
            raise from_terminal(err) from None

    async def get(self, key: str) -> JsonValue | None:
        """Restate K/V state of this workflow."""
        return await self._await(self._ctx.get(key, type_hint=object))

    async def set(self, key: str, value: JsonValue) -> None:
        """Restate K/V state of this workflow."""
        self._ctx.set(key, value)

    async def promise(self, name: str) -> JsonValue:
        """Wait for a Restate durable promise (resolved by the ``signal`` handler)."""
        return await self._await(self._ctx.promise(name, type_hint=object).value())

    async def sleep(self, delta: timedelta) -> None:
        """A durable timer: survives restarts, not repeated on replay."""
        await self._await(self._ctx.sleep(delta))

    async def now(self) -> datetime:
        """Journaled wall-clock time (UTC)."""
        return datetime.fromtimestamp(await self._await(self._ctx.time()), UTC)

    async def uuid(self) -> str:
        """A UUID from Restate's seeded random: the same on replay."""
        return str(self._ctx.uuid())
