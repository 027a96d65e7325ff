"""Prometheus instruments, updated as LLM calls, steps and breaker transitions happen.

Everything lives in ECL's own :data:`REGISTRY` (not the process-wide default one), so that
building a second app in a test or embedding ECL in a service that has its own metrics does
not collide. ``/metrics`` exposes it, beside the few gauges read from the database at scrape
time (workflows by state: one ``GROUP BY`` over an index).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "BREAKER_STATES",
    "REGISTRY",
    "breaker_failure",
    "breaker_refused",
    "breaker_transition",
    "llm_call",
    "step_finished",
]

REGISTRY = CollectorRegistry(auto_describe=True)
"""ECL's instruments (``prometheus_client.generate_latest(REGISTRY)``)."""

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""The value of ``ecl_llm_breaker_state`` for each state."""

_LATENCY = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

LLM_REQUESTS = Counter(
    "ecl_llm_requests", "LLM calls by provider, model and outcome", ["provider", "model", "outcome"], registry=REGISTRY
)
LLM_ERRORS = Counter(
    "ecl_llm_errors", "Failed LLM calls by error kind", ["provider", "model", "kind"], registry=REGISTRY
)
LLM_TOKENS = Counter(
    "ecl_llm_tokens",
    "LLM tokens by kind (input, output, cache_creation, cache_read)",
    ["provider", "model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter("ecl_llm_cost_usd", "What LLM calls cost (USD)", ["provider", "model"], registry=REGISTRY)
LLM_LATENCY = Histogram(
    "ecl_llm_request_duration_seconds", "LLM call latency", ["provider", "model"], buckets=_LATENCY, registry=REGISTRY
)
STEPS = Counter("ecl_step_executions", "Step attempts by step and final state", ["step_id", "state"], registry=REGISTRY)
STEP_LATENCY = Histogram(
    "ecl_step_duration_seconds", "Step attempt duration", ["step_id"], buckets=_LATENCY, registry=REGISTRY
)
BREAKER_STATE = Gauge(
    "ecl_llm_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open",
    ["provider", "model"],
    registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "ecl_llm_breaker_transitions",
    "Circuit breaker transitions by target state",
    ["provider", "model", "state"],
    registry=REGISTRY,
)
BREAKER_FAILURES = Counter(
    "ecl_llm_breaker_failures",
    "Retryable provider failures counted by the breaker",
    ["provider", "model"],
    registry=REGISTRY,
)
BREAKER_REFUSALS = Counter(
    "ecl_llm_breaker_refusals",
    "Calls the breaker held back (open, or half-open with its trial in flight)",
    ["provider", "model"],
    registry=REGISTRY,
)


def llm_call(
    provider: str,
    model: str,
    *,
    outcome: str,
    error_kind: str | None,
    latency_s: float,
    tokens: dict[str, int],
    cost_usd: Decimal,
) -> None:
    """Count one LLM call."""
    LLM_REQUESTS.labels(provider, model, outcome).inc()
    if error_kind:
        LLM_ERRORS.labels(provider, model, error_kind).inc()
    LLM_LATENCY.labels(provider, model).observe(max(0.0, latency_s))
    for kind, n in tokens.items():
        if n:
            LLM_TOKENS.labels(provider, model, kind).inc(n)
    if cost_usd:
        LLM_COST.labels(provider, model).inc(float(cost_usd))


_STEP_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}
"""The labelled instruments of each (step, state): ``labels()`` costs more than the update
itself, and a step attempt updates them on the hot path. They are the children ``labels()``
returns (the metric keeps them too), so nothing is counted apart."""


def step_finished(step_id: str, state: str, duration_s: float) -> None:
    """Count one finished step attempt."""
    children = _STEP_CHILDREN.get((step_id, state))
    if children is None:
        children = _STEP_CHILDREN[(step_id, state)] = (STEPS.labels(step_id, state), STEP_LATENCY.labels(step_id))
    count, latency = children
    count.inc()
    latency.observe(max(0.0, duration_s))


def breaker_transition(provider: str, model: str, state: str) -> None:
    """A breaker moved to ``state``."""
    BREAKER_STATE.labels(provider, model).set(BREAKER_STATES[state])
    BREAKER_TRANSITIONS.labels(provider, model, state).inc()


def breaker_failure(provider: str, model: str) -> None:
    """A retryable failure the breaker counted."""
    BREAKER_FAILURES.labels(provider, model).inc()


def breaker_refused(provider: str, model: str) -> None:
    """The breaker held a call back."""
    BREAKER_REFUSALS.labels(provider, model).inc()
