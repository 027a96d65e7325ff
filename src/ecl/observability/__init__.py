"""Logging and metrics."""

from ecl.observability.logging import (
    Redactor,
    bind_attempt,
    bind_step,
    bind_workflow,
    configure_logging,
    get_logger,
)

__all__ = ["Redactor", "bind_attempt", "bind_step", "bind_workflow", "configure_logging", "get_logger"]
