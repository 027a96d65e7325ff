"""Tracing with OpenTelemetry: workflow submission → run → step attempt → LLM call.

Off by default (``observability.tracing``): the tracer is then the API's no-op tracer,
nothing is built per span and no exporter is loaded. When on, spans go to the tracer
provider given to :func:`configure_tracing`, else the process's global one (set by the
program or by ``opentelemetry-instrument``); when none is set, ECL installs an SDK provider
whose exporters come from ``observability.otlp_endpoint`` and the standard ``OTEL_*``
variables (:func:`exporters_from`); with none configured, runs still get trace ids (bound
into the log context with ``workflow_id``).

Spans, one trace per workflow:

- ``submit {workflow_id}``: the workflow's submission, a child of the caller's span (an API
  request's W3C ``traceparent``). Its context is the workflow's *trace context*, recorded
  with the workflow (``workflows.trace_context``, and the Restate invocation's request), so
  every run of it — the first, and each resume after a crash or a restart — is its child;
- ``workflow {workflow_id}``: one run of one workflow (``ecl.workflow.resumed`` when it
  replays a journal);
- ``step {step_id}``: one attempt of a step (``ecl.step.attempt``, ``ecl.step.iteration``),
  status error when the attempt fails; a step replayed from the journal has none;
- ``signal {name} {workflow_id}``: a signal sent to a workflow (approve/revise, a budget
  top-up), in the *sender's* trace (an API request's ``traceparent``), linked to the
  workflow's trace;
- ``chat {model}``: one LLM call, with the OpenTelemetry GenAI semantic-convention
  attributes (model, provider, token usage); its prompt and reply only with
  ``observability.capture_content`` (:mod:`ecl.observability.content`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from ecl.core.errors import InputValidationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "configure_tracing",
    "end_llm_span",
    "exporters_from",
    "extract_context",
    "link_workflow",
    "signal_span",
    "start_llm_span",
    "step_span",
    "submit_span",
    "traced_request",
    "tracing_enabled",
    "workflow_span",
]

_NOOP: Tracer = trace.NoOpTracer()
_tracer: Tracer = _NOOP
_enabled = False
_installed = False
_PROPAGATOR = TraceContextTextMapPropagator()
EXPORTERS = ("otlp", "console", "none")
"""The values of ``OTEL_TRACES_EXPORTER`` ECL understands (comma-separated)."""


def configure_tracing(
    enabled: bool,
    provider: trace.TracerProvider | None = None,
    *,
    otlp_endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Turn tracing on (spans to ``provider``, else the global provider) or off (no-op).

    Without a provider and with no global one set, an SDK provider is installed once per
    process, exporting as :func:`exporters_from` says (``otlp_endpoint``: the
    ``observability.otlp_endpoint`` setting)."""
    global _tracer, _enabled, _installed
    if not enabled:
        _tracer, _enabled = _NOOP, False
        return
    if provider is None:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider) and not _installed:
            _installed = True
            trace.set_tracer_provider(_sdk_provider(otlp_endpoint, os.environ if environ is None else environ))
            provider = trace.get_tracer_provider()
    _tracer, _enabled = provider.get_tracer("ecl"), True


def _sdk_provider(otlp_endpoint: str | None, environ: Mapping[str, str]) -> trace.TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "ecl"}))
    for exporter in exporters_from(otlp_endpoint, environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def exporters_from(otlp_endpoint: str | None, environ: Mapping[str, str]) -> list[SpanExporter]:
    """The span exporters configured: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``,
    ``none``, comma-separated) when set; else OTLP/HTTP when an endpoint is configured
    (``otlp_endpoint``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``); else none."""
    endpoint = otlp_endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    named = environ.get("OTEL_TRACES_EXPORTER", "")
    chosen = [n.strip().lower() for n in named.split(",") if n.strip()]
    if not chosen:
        chosen = ["otlp"] if endpoint or traces_endpoint else []
    unknown = [n for n in chosen if n not in EXPORTERS]
    if unknown:
        raise InputValidationError(
            f"OTEL_TRACES_EXPORTER = {named!r}: ECL knows {', '.join(EXPORTERS)}, not {', '.join(unknown)}",
            errors=[{"field": "OTEL_TRACES_EXPORTER", "message": f"one of {', '.join(EXPORTERS)}", "value": named}],
        )
    found: list[SpanExporter] = []
    if "otlp" in chosen:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The setting names the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT does;
        # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the whole URL of the traces path.
        if otlp_endpoint or not traces_endpoint:
            url = f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
        else:
            url = traces_endpoint
        found.append(OTLPSpanExporter(endpoint=url))
    if "console" in chosen:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        found.append(ConsoleSpanExporter())
    return found


def tracing_enabled() -> bool:
    """Whether spans are recorded."""
    return _enabled


def _traceparent(span: Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def extract_context(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The caller's context from W3C ``traceparent``/``tracestate`` headers (``None``: none, or off)."""
    if not _enabled or "traceparent" not in headers:
        return None
    return _PROPAGATOR.extract({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})


@contextmanager
def traced_request(headers: Mapping[str, str]) -> Iterator[None]:
    """The caller's trace (W3C ``traceparent``) is the current one inside: what is started
    here (a workflow's submission) joins it. Nothing when tracing is off or none is given."""
    found = extract_context(headers)
    if found is None:
        yield
        return
    token = otel_context.attach(found)
    try:
        yield
    finally:
        otel_context.detach(token)


def submit_span(workflow_id: str, definition_id: str) -> str | None:
    """Record a workflow's submission (a span, child of the current one: the caller's) and
    return its ``traceparent``: the trace context every run of the workflow continues.
    ``None`` when tracing is off."""
    if not _enabled:
        return None
    span = _tracer.start_span(
        f"submit {workflow_id}",
        kind=SpanKind.PRODUCER,
        attributes={"ecl.workflow.id": workflow_id, "ecl.workflow.definition": definition_id},
    )
    span.end()
    return _traceparent(span)


@contextmanager
def signal_span(workflow_id: str, name: str) -> Iterator[Span]:
    """The span of a signal sent to a workflow: a child of the current span (the sender's),
    linked to the workflow's trace with :func:`link_workflow`. The no-op span when off."""
    if not _enabled:
        yield trace.INVALID_SPAN
        return
    attributes: dict[str, AttributeValue] = {"ecl.workflow.id": workflow_id, "ecl.signal.name": name}
    with _tracer.start_as_current_span(
        f"signal {name} {workflow_id}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def link_workflow(span: Span, trace_context: str | None) -> None:
    """Link ``span`` to the workflow whose recorded trace context is ``trace_context``."""
    if not trace_context or not span.is_recording():
        return
    target = trace.get_current_span(_PROPAGATOR.extract({"traceparent": trace_context})).get_span_context()
    if target.is_valid:
        span.add_link(target, {"ecl.link": "workflow"})


_OFF: AbstractContextManager[None] = nullcontext()
"""A span while tracing is off: one object for all (thousands of runs each hold one or two)."""


def workflow_span(
    workflow_id: str, trace_context: str | None = None, *, resumed: bool = False
) -> AbstractContextManager[str | None]:
    """The span of one run of one workflow, a child of its recorded ``trace_context`` (a
    W3C ``traceparent``; none: a new trace); yields its trace id (32 hex digits), ``None``
    when off. Every log line inside carries that ``trace_id``."""
    return _workflow_span(workflow_id, trace_context, resumed) if _enabled else _OFF


def step_span(step_id: str, attempt: int, iteration: int) -> AbstractContextManager[None]:
    """The span of one step attempt; an exception leaving it marks it failed."""
    return _step_span(step_id, attempt, iteration) if _enabled else _OFF


@contextmanager
def _workflow_span(workflow_id: str, trace_context: str | None, resumed: bool) -> Iterator[str | None]:
    parent = _PROPAGATOR.extract({"traceparent": trace_context}) if trace_context else otel_context.Context()
    attributes: dict[str, AttributeValue] = {"ecl.workflow.id": workflow_id}
    if resumed:
        attributes["ecl.workflow.resumed"] = True
    with _tracer.start_as_current_span(f"workflow {workflow_id}", context=parent, attributes=attributes) as span:
        context = span.get_span_context()
        trace_id = format(context.trace_id, "032x") if context.is_valid else None
        if trace_id is None:
            yield None
            return
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield trace_id


@contextmanager
def _step_span(step_id: str, attempt: int, iteration: int) -> Iterator[None]:
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
