"""Fakes shipped with ECL for your own tests.

- :class:`FakeAnthropicServer`: a real HTTP server speaking the Messages API, with scripted
  replies, fault injection, held requests and a request log.
- :class:`~ecl.llm.MockLlmProvider`: an in-process scripted provider.
- :class:`InMemoryDurableContext`: run orchestrator code without an engine.
- :func:`run_workflow`: run one workflow on an in-memory context (no database).
- :func:`capture_logs`: collect structlog events.
"""

from structlog.testing import capture_logs

from ecl.llm.mock import MockLlmProvider
from ecl.testing.anthropic_server import FakeAnthropicServer, Hold, ReceivedRequest, Reply
from ecl.testing.memory import InMemoryDurableContext
from ecl.testing.workflows import run_workflow

__all__ = [
    "FakeAnthropicServer",
    "Hold",
    "InMemoryDurableContext",
    "MockLlmProvider",
    "ReceivedRequest",
    "Reply",
    "capture_logs",
    "run_workflow",
]
