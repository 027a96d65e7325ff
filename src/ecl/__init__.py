"""ECL: durable AI workflows.

The names a user needs, and nothing else (the list is pinned by a test)::

    import ecl

    @ecl.step
    async def summarise(ctx: ecl.StepContext, text: str) -> str:
        reply = await ctx.llm.complete(ecl.CompletionRequest.of(f"Summarise: {text}"))
        return reply.content

    @ecl.workflow("summary")
    async def summary(ctx: ecl.WorkflowContext, text: str) -> str:
        return await summarise(ctx, text)

Everything else lives in the subpackages (``ecl.testing`` holds the fakes for tests). The
names are imported when first used, so ``import ecl`` (and any ``ecl.*`` module) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecl.core.durable import DurableContext
    from ecl.core.errors import EclError, LlmError, MaxRevisionsExceeded, StepError, StepValidationError
    from ecl.core.policy import RetryPolicy
    from ecl.core.results import NeedsRevision, Success, WorkflowResult
    from ecl.engines.handle import open_engine
    from ecl.llm.mock import MockLlmProvider
    from ecl.llm.provider import CompletionRequest
    from ecl.steps.context import StepContext
    from ecl.steps.function import step
    from ecl.steps.step import Step
    from ecl.workflows.catalog import DefinitionFiles
    from ecl.workflows.code import workflow
    from ecl.workflows.context import WorkflowContext

_HOME = {
    "CompletionRequest": "ecl.llm.provider",
    "DefinitionFiles": "ecl.workflows.catalog",
    "DurableContext": "ecl.core.durable",
    "EclError": "ecl.core.errors",
    "LlmError": "ecl.core.errors",
    "MaxRevisionsExceeded": "ecl.core.errors",
    "MockLlmProvider": "ecl.llm.mock",
    "NeedsRevision": "ecl.core.results",
    "RetryPolicy": "ecl.core.policy",
    "Step": "ecl.steps.step",
    "StepContext": "ecl.steps.context",
    "StepError": "ecl.core.errors",
    "StepValidationError": "ecl.core.errors",
    "Success": "ecl.core.results",
    "WorkflowContext": "ecl.workflows.context",
    "WorkflowResult": "ecl.core.results",
    "open_engine": "ecl.engines.handle",
    "step": "ecl.steps.function",
    "workflow": "ecl.workflows.code",
}
"""Where each public name is defined."""

__all__ = [
    "CompletionRequest",
    "DefinitionFiles",
    "DurableContext",
    "EclError",
    "LlmError",
    "MaxRevisionsExceeded",
    "MockLlmProvider",
    "NeedsRevision",
    "RetryPolicy",
    "Step",
    "StepContext",
    "StepError",
    "StepValidationError",
    "Success",
    "WorkflowContext",
    "WorkflowResult",
    "open_engine",
    "step",
    "workflow",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ecl' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
