"""Logging, metrics and tracing."""

from ecl.observability.content import configure_content, content_enabled
from ecl.observability.logging import (
    Redactor,
    bind_attempt,
    bind_step,
    bind_workflow,
    configure_logging,
    get_logger,
)
from ecl.observability.tracing import configure_tracing, tracing_enabled

__all__ = [
    "Redactor",
    "bind_attempt",
    "bind_step",
    "bind_workflow",
    "configure_content",
    "configure_logging",
    "configure_tracing",
    "content_enabled",
    "get_logger",
    "tracing_enabled",
]
