"""``codebase-migration``: ECL's seven-step analyzer, a code-first workflow like any user's.

::

    0 intake ─► 1 summarize-chunk x N (fan-out, at most ``concurrency`` at once)
              ─► grade-report ∥ component-breakdown ─► refactor-breakdown
    2 architecture (read_file tool) ─► 3 project-plan ─► 4 implementation-spec x phases
    5 assess-standards ∥ assess-adherence (implementation path, or the promise
      ``implementation``) ─► at most one revision round of the specs it asks for
    6 writeup ─► slides ─► package (index.md, slides.html, deliverables.zip)

It is offered through the ``ecl.workflows`` entry point of ECL's own package (as a user
package offers its workflows), and its prompts come from ``ecl/analyzer/prompts``, which
a ``prompts_path`` folder overrides template by template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ecl
from ecl.analyzer.bundle import ANALYZER_ID, AnalysisInput, AnalyzerOptions
from ecl.analyzer.models import AnalysisResult, ChunkSummary, Document
from ecl.analyzer.steps import (
    architecture,
    assess_adherence,
    assess_standards,
    component_breakdown,
    grade_report,
    implementation_spec,
    intake,
    package,
    project_plan,
    refactor_breakdown,
    slides,
    summarize_chunk,
    writeup,
)

__all__ = ["IMPLEMENTATION_PROMISE", "WORKFLOW_ID", "codebase_migration"]

WORKFLOW_ID = ANALYZER_ID
IMPLEMENTATION_PROMISE = "implementation"
"""Resolved with ``{"path": DIR}`` by ``ecl signal ID implementation --path DIR`` or the API."""

T = TypeVar("T")


async def _limited(calls: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run step calls concurrently, at most ``limit`` at a time, results in call order.

    Each call is made (and so takes its journal position) only when it gets a slot; the
    semaphore wakes waiters first-in first-out, so the calls are made in list order on
    every run and replay, whatever order they finish in.
    """
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


@ecl.workflow(WORKFLOW_ID)
async def codebase_migration(
    ctx: ecl.WorkflowContext,
    code_path: str,
    target: str,
    intended_use: str = "",
    vision: str | None = None,
    deploy: list[str] | None = None,
    skill: str | None = None,
    implementation: str | None = None,
    skip_assessment: bool = False,
    budget_tokens: int | None = None,
    options: AnalyzerOptions | None = None,
) -> AnalysisResult:
    """Codebase migration analyzer: grade a codebase, design, plan, specify, assess and deliver."""
    bundle = AnalysisInput(
        code_path=code_path,
        target=target,
        intended_use=intended_use,
        vision=vision,
        deploy=list(deploy or []),
        skill=skill,
        implementation=implementation,
        skip_assessment=skip_assessment,
        budget_tokens=budget_tokens,
        options=options or AnalyzerOptions(),
    )
    opts = bundle.options

    # 0. intake
    taken = await intake(ctx, bundle)
    total = len(taken.chunk_labels)

    # 1. codebase analysis: map (one durable step per chunk) ...
    def chunk_call(i: int) -> Callable[[], Awaitable[ChunkSummary]]:
        return lambda: summarize_chunk.iteration(i)(ctx, i, total, taken)

    summaries = await _limited([chunk_call(i) for i in range(total)], opts.concurrency)
    # ... then reduce into the three documents.
    grade, components = await asyncio.gather(
        grade_report(ctx, taken, summaries), component_breakdown(ctx, taken, summaries)
    )
    refactor = await refactor_breakdown(ctx, taken, grade, components)

    # 2. architecture (the model may read files of the manifest)
    design = await architecture(ctx, taken, grade, components, refactor)

    # 3. planning
    planned = await project_plan(ctx, taken, design)
    phases = planned.plan.phases

    # 4. one spec per phase
    def spec_call(i: int, feedback: str = "") -> Callable[[], Awaitable[Document]]:
        return lambda: implementation_spec(ctx, taken, design, phases[i], i + 1, len(phases), feedback)

    specs = await _limited([spec_call(i) for i in range(len(phases))], opts.concurrency)

    # 5. quality assessment
    assessment: list[Document] = []
    score: float | None = None
    revised: list[int] = []
    if not bundle.skip_assessment:
        path = bundle.implementation
        if path is None:
            answer: Any = await ctx.promise(IMPLEMENTATION_PROMISE)
            path = str(answer.get("path", "")) if isinstance(answer, dict) else str(answer or "")
        standards, adherence = await asyncio.gather(
            assess_standards(ctx, taken, path, opts), assess_adherence(ctx, planned, path, opts)
        )
        assessment = [standards, adherence.document]
        score = adherence.adherence.score
        requests = {r.phase: r.request for r in adherence.adherence.revision_requests if 1 <= r.phase <= len(phases)}
        if score < opts.adherence_threshold and requests:
            # One bounded revision round: the specs the assessment asked to change, once.
            await ctx.record_revision(1)
            revised = sorted(requests)
            redone = await _limited([spec_call(n - 1, requests[n]) for n in revised], opts.concurrency)
            for n, doc in zip(revised, redone, strict=True):
                specs[n - 1] = doc

    # 6. delivery
    final = await writeup(ctx, taken, grade, design, planned, assessment)
    deck = await slides(ctx, final)
    documents = [final, deck, grade, components, refactor, design, planned.document, *specs, *assessment]
    documents += [
        Document(name=f"summaries/chunk-{s.index + 1:04d}.md", title=s.label, artifact_id=s.artifact_id, chars=0)
        for s in summaries
    ]
    facts = {
        "code": str(taken.summary.get("source", bundle.code_path)),
        "target": bundle.target,
        "files analysed": str(taken.summary.get("files")),
        "chunks": str(total),
        "phases": str(len(phases)),
        "assessment": "skipped" if bundle.skip_assessment else f"adherence {score:.2f}",
    }
    if revised:
        facts["revised specs"] = ", ".join(f"phase {n}" for n in revised)
    delivered = await package(ctx, taken, documents, facts)
    return AnalysisResult(
        target=bundle.target,
        chunks=total,
        phases=len(phases),
        documents=delivered.files,
        package_artifact=delivered.package_artifact,
        adherence_score=score,
        revised_phases=revised,
        assessment="skipped" if bundle.skip_assessment else "done",
    )
