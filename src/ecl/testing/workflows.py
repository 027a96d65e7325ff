"""Running one workflow in a test: no database, no engine, an in-memory journal.

::

    result = await run_workflow(release_notes, {"changes": ["..."]}, llm=MockLlmProvider(["..."]))
    assert result.output == "..."

The workflow runs exactly as on an engine (journaled steps, the same records, the same
errors), on an :class:`~ecl.testing.InMemoryDurableContext`; pass ``ctx`` to drive promises
or to replay (``ctx.replay()``) and check that no step runs twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ecl.core.results import WorkflowResult
from ecl.llm.mock import MockLlmProvider
from ecl.llm.provider import LlmProvider
from ecl.steps.prompts import PromptLibrary
from ecl.testing.memory import InMemoryDurableContext
from ecl.workflows.catalog import WorkflowCatalog
from ecl.workflows.code import CodeWorkflow
from ecl.workflows.recorder import WorkflowRecorder

__all__ = ["run_workflow"]


async def run_workflow(
    workflow: CodeWorkflow[Any, Any] | str,
    input: Mapping[str, Any] | None = None,
    *,
    llm: LlmProvider | None = None,
    ctx: InMemoryDurableContext | None = None,
    modules: Iterable[str] = (),
    recorder: WorkflowRecorder | None = None,
) -> WorkflowResult:
    """Run ``workflow`` (a ``@ecl.workflow`` function, or the id of one in ``modules`` or the
    built-ins, YAML definitions included) once and return its result.

    ``llm`` defaults to a :class:`MockLlmProvider` that answers ``"ok"``.
    """
    objects = [workflow] if isinstance(workflow, CodeWorkflow) else []
    catalog = WorkflowCatalog.build(modules=modules, entry_points=False, workflows=objects)
    orchestrator = catalog.orchestrator(
        llm or MockLlmProvider(["ok"]), prompts=PromptLibrary(search_dirs=catalog.prompt_dirs)
    )
    workflow_id = workflow.id if isinstance(workflow, CodeWorkflow) else workflow
    return await orchestrator.run(ctx or InMemoryDurableContext(), workflow_id, dict(input or {}), recorder=recorder)
