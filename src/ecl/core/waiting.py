"""What a running workflow waits for, as shown by ``ecl status`` and ``GET /workflows/{id}``
(the ``waiting`` field of its row; ``None`` while it is not waiting).

Three reasons, each a JSON object with ``reason`` and ``since`` (UTC, ISO 8601):

- ``rate_limit``: an LLM call waits for the provider's capacity (``model`` is
  ``provider/model``, ``why`` the limit: ``requests per minute``, ``tokens per minute`` or
  ``retry-after``; ``seconds`` and ``until`` the expected end; ``step_id``). Cleared when the
  call goes on.
- ``breaker``: the same for a call waiting for an open circuit breaker to let a trial
  through (``why`` is ``circuit open``; ``model`` the breaker's ``provider/model``).
- ``slot``: the embedded engine holds the workflow until one of its definition's
  ``max_concurrent_workflows`` slots frees (``definition_id``, ``limit``). Cleared when it starts.
- ``budget``: state ``waiting_for_budget``; the refused call's ``BudgetExceeded``
  (``budget_usd``, ``budget_tokens``, ``spent_usd``, ``spent_tokens``, ``call``, ``message``)
  until the budget is topped up (``ecl signal ID budget --add-usd N``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CIRCUIT_OPEN", "budget_wait", "describe_wait", "rate_limit_wait", "slot_wait"]

CIRCUIT_OPEN = "circuit open"
"""The ``why`` of a call waiting for an open circuit breaker (reason ``breaker``)."""


def _now() -> datetime:
    return datetime.now(UTC)


def rate_limit_wait(model: str, why: str, seconds: float, step_id: str | None) -> dict[str, Any]:
    """An LLM call of ``step_id`` waits ``seconds`` for the capacity of ``model`` (or for its
    circuit breaker, when ``why`` is :data:`CIRCUIT_OPEN`)."""
    now = _now()
    return {
        "reason": "breaker" if why == CIRCUIT_OPEN else "rate_limit",
        "model": model,
        "why": why,
        "seconds": round(seconds, 2),
        "until": (now + timedelta(seconds=seconds)).isoformat(),
        "step_id": step_id,
        "since": now.isoformat(),
    }


def slot_wait(definition_id: str, limit: int) -> dict[str, Any]:
    """The workflow waits for one of ``limit`` slots of its definition."""
    return {"reason": "slot", "definition_id": definition_id, "limit": limit, "since": _now().isoformat()}


def budget_wait(refusal: Any) -> dict[str, Any]:
    """The workflow waits for budget: ``refusal`` is the refused call's ``BudgetExceeded.to_dict()``."""
    found = dict(refusal) if isinstance(refusal, dict) else {"message": str(refusal)}
    found.pop("type", None)
    found.pop("retryable", None)
    return {"reason": "budget", **found, "since": _now().isoformat()}


def describe_wait(waiting: dict[str, Any]) -> str:
    """One line for a workflow's ``waiting``."""
    reason = waiting.get("reason")
    if reason == "rate_limit":
        return (
            f"rate limit of {waiting.get('model')} ({waiting.get('why')}), "
            f"{waiting.get('seconds')} s until {waiting.get('until')}"
        )
    if reason == "breaker":
        return (
            f"the open circuit breaker of {waiting.get('model')}, "
            f"{waiting.get('seconds')} s until {waiting.get('until')}"
        )
    if reason == "slot":
        return f"a slot of {waiting.get('definition_id')} (max_concurrent_workflows = {waiting.get('limit')})"
    if reason == "budget":
        return str(waiting.get("message") or "budget")
    return json.dumps(waiting, default=str)
