"""The package's steps and workflows (found by ECL through the ``ecl.workflows`` entry point)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field

import ecl


class Note(BaseModel):
    """One line of the release notes."""

    change: str
    line: str = Field(min_length=1, max_length=300)


@ecl.step(retry=ecl.RetryPolicy(max_attempts=2))
async def summarise(ctx: ecl.StepContext, change: str) -> Note:
    """Summarise one change in one sentence (one LLM call)."""
    prompt = ctx.prompts.render("summarise", change=change)
    reply = await ctx.llm.complete(ecl.CompletionRequest.of(prompt, max_tokens=200))
    return Note(change=change, line=reply.content.strip())


@ecl.step
async def compose(ctx: ecl.StepContext, title: str, notes: list[Note]) -> str:
    """The notes as one Markdown text (no LLM call)."""
    lines = [f"# {title}", ""] + [f"- {note.line}" for note in notes]
    return "\n".join(lines)


@ecl.workflow("release-notes")
async def release_notes(ctx: ecl.WorkflowContext, changes: list[str], title: str = "Release notes") -> str:
    """Release notes: every change summarised (concurrently), then composed."""
    if not changes:
        raise ecl.StepValidationError("release-notes: changes must not be empty", step_id="release-notes")
    notes = await asyncio.gather(*(summarise(ctx, change) for change in changes))
    return await compose(ctx, title, list(notes))


definitions = ecl.DefinitionFiles(Path(__file__).parent / "definitions")
"""The YAML workflows shipped with the package (``quick-note``)."""
