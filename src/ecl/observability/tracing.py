"""Tracing with OpenTelemetry: workflow run → step attempt → LLM call.

Off by default (``observability.tracing``): the tracer is then the API's no-op tracer and
nothing is built per span. When on, spans go to the tracer provider given to
:func:`configure_tracing`, else the process's global one (set by the program or by
``opentelemetry-instrument``); when none is set, an SDK provider without an exporter is
installed, so that runs still get trace ids (bound into the log context with
``workflow_id``).

Spans:

- ``workflow {workflow_id}``: one run of one workflow by the embedded engine (a resumed
  workflow starts a new trace: the trace id is not journaled yet);
- ``step {step_id}``: one attempt of a step (``ecl.step.attempt``, ``ecl.step.iteration``),
  status error when the attempt fails;
- ``chat {model}``: one LLM call, with the OpenTelemetry GenAI semantic-convention
  attributes (model, provider, token usage); never the prompt or the reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

__all__ = ["configure_tracing", "end_llm_span", "start_llm_span", "step_span", "tracing_enabled", "workflow_span"]

_NOOP: Tracer = trace.NoOpTracer()
_tracer: Tracer = _NOOP
_enabled = False


def configure_tracing(enabled: bool, provider: trace.TracerProvider | None = None) -> None:
    """Turn tracing on (spans to ``provider``, else the global provider) or off (no-op)."""
    global _tracer, _enabled
    if not enabled:
        _tracer, _enabled = _NOOP, False
        return
    if provider is None:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            # Nobody set one: an SDK provider (no exporter), so runs still have trace ids.
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "ecl"})))
            provider = trace.get_tracer_provider()
    _tracer, _enabled = provider.get_tracer("ecl"), True


def tracing_enabled() -> bool:
    """Whether spans are recorded."""
    return _enabled


@contextmanager
def workflow_span(workflow_id: str) -> Iterator[str | None]:
    """The span of one run of one workflow; yields its trace id (32 hex digits), ``None`` when off."""
    if not _enabled:
        yield None
        return
    with _tracer.start_as_current_span(f"workflow {workflow_id}", attributes={"ecl.workflow.id": workflow_id}) as span:
        context = span.get_span_context()
        yield format(context.trace_id, "032x") if context.is_valid else None


@contextmanager
def step_span(step_id: str, attempt: int, iteration: int) -> Iterator[None]:
    """The span of one step attempt; an exception leaving it marks it failed."""
    if not _enabled:
        yield
        return
    attributes: dict[str, AttributeValue] = {
        "ecl.step.id": step_id,
        "ecl.step.attempt": attempt,
        "ecl.step.iteration": iteration,
    }
    with _tracer.start_as_current_span(f"step {step_id}", attributes=attributes):
        yield


def start_llm_span(provider: str, model: str) -> Span:
    """The span of one LLM call, started (not made current: it has no children); end it
    with :func:`end_llm_span`. The no-op span when tracing is off."""
    if not _enabled:
        return trace.INVALID_SPAN
    return _tracer.start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        },
    )


def end_llm_span(
    span: Span,
    *,
    response_model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    error: str | None = None,
) -> None:
    """End an LLM call's span with what the provider answered, or the kind of its error."""
    if not span.is_recording():
        return
    if response_model is not None:
        span.set_attribute("gen_ai.response.model", response_model)
    if input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    if output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
