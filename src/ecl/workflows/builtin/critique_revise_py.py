"""Critique-Revise written as Python: the code-first twin of the ``critique-revise`` graph.

The same steps (the class-based built-ins, wrapped with :func:`ecl.step`), the same journal
names (``step:generate``, ``step:critique``, ``step:revise:1``, ``step:critique:1``, ...,
``step:final``), the same durable state (``current_draft``, ``revision_count``), the same
records and the same failure after three revisions: only the control flow is a ``for`` and
an ``if`` instead of a revision-loop transition. The result's ``output`` is the final text.
"""

from __future__ import annotations

from ecl.core.errors import MaxRevisionsExceeded
from ecl.steps.function import step
from ecl.workflows.builtin.critique_revise import (
    CritiqueOutput,
    CritiqueStep,
    FinalOutput,
    FinalStep,
    GenerateOutput,
    GenerateStep,
    ReviseOutput,
    ReviseStep,
)
from ecl.workflows.code import workflow
from ecl.workflows.context import WorkflowContext
from ecl.workflows.orchestrator import STATE_DRAFT

__all__ = ["MAX_REVISIONS", "critique_revise_py"]

MAX_REVISIONS = 3
"""At most this many revisions, then ``MaxRevisionsExceeded`` (as the graph's ``max_iterations``)."""

generate = step(GenerateStep())
critique = step(CritiqueStep())
revise = step(ReviseStep())
final = step(FinalStep())


@workflow("critique-revise-py", name="Critique and Revise Loop (Python)")
async def critique_revise_py(ctx: WorkflowContext, topic: str) -> str:
    """Generate a draft on a topic, critique it, revise it (at most 3 times): written as code."""
    first: GenerateOutput = await generate(ctx, topic=topic)
    draft = first.draft
    await ctx.set(STATE_DRAFT, draft)
    verdict: CritiqueOutput = await critique(ctx, draft=draft)
    attempt = 0
    while verdict.decision == "revise":
        attempt += 1
        if attempt > MAX_REVISIONS:
            raise MaxRevisionsExceeded(
                f"step critique still asks for a revision after {MAX_REVISIONS} revision(s) "
                f"(max_iterations={MAX_REVISIONS})",
                attempts=MAX_REVISIONS,
                step_id="critique",
            )
        feedback = verdict.feedback or "Please revise the draft."
        revised: ReviseOutput = await revise.iteration(attempt)(ctx, draft=draft, feedback=feedback, attempt=attempt)
        draft = revised.revised_draft
        await ctx.set(STATE_DRAFT, draft)
        await ctx.record_revision(attempt)
        verdict = await critique.iteration(attempt)(ctx, draft=draft)
    done: FinalOutput = await final(ctx, text=draft, topic=topic)
    return done.text
