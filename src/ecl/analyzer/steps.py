"""The analyzer's steps, written with ECL's public API (``@ecl.step``) like any user step.

Each step reads what it needs from the artifact store (the manifest, the chunk plan, the
documents of earlier steps), renders its prompt from a Jinja template (user text fenced as
data, see :mod:`ecl.analyzer.prompting`), stores its document as an artifact and returns
only ids: journaled outputs stay small. Blocking file work (intake, reading chunks)
runs in a thread so the engine's heartbeats keep going.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

import ecl
from ecl.analyzer.bundle import AnalysisInput, AnalyzerOptions, plan_for, run_intake
from ecl.analyzer.chunking import Chunk, plan_chunks
from ecl.analyzer.delivery import index_markdown, slides_html, zip_files
from ecl.analyzer.intake import build_manifest
from ecl.analyzer.manifest import Manifest, ManifestReader
from ecl.analyzer.models import (
    Adherence,
    AdherenceResult,
    ChunkSummary,
    Delivery,
    Document,
    IntakeResult,
    Phase,
    PlanResult,
    ProjectPlan,
)
from ecl.analyzer.prompting import fence, fenced_chunk
from ecl.core.errors import InputValidationError
from ecl.llm import CompletionResponse, Message, ToolResult, ToolSpec

__all__ = [
    "READ_FILE_TOOL",
    "architecture",
    "assess_adherence",
    "assess_standards",
    "component_breakdown",
    "grade_report",
    "implementation_spec",
    "intake",
    "package",
    "project_plan",
    "refactor_breakdown",
    "slides",
    "summarize_chunk",
    "writeup",
]

SUMMARY_MAX_TOKENS = 4096
DOCUMENT_MAX_TOKENS = 8192
MAX_TOOL_ROUNDS = 6
"""Rounds of ``read_file`` calls the architecture step allows before asking for the document."""

READ_FILE_TOOL = ToolSpec(
    name="read_file",
    description=(
        "Read one file of the codebase under analysis (secrets redacted). "
        "`path` must be one of the paths listed in the manifest."
    ),
    input_schema={
        "type": "object",
        "properties": {"path": {"type": "string", "description": "The file's path, as in the manifest."}},
        "required": ["path"],
    },
)

M = TypeVar("M", bound=BaseModel)

# ---------------------------------------------------------------- helpers

_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_CACHE_SIZE = 8


async def _json_artifact(ctx: ecl.StepContext, artifact_id: str) -> Any:
    """A JSON artifact of this workflow, parsed once per process (chunk steps share the manifest)."""
    key = (ctx.workflow_id, artifact_id)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = json.loads(await ctx.retrieve_artifact(artifact_id))
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


async def _text_artifact(ctx: ecl.StepContext, artifact_id: str) -> str:
    return (await ctx.retrieve_artifact(artifact_id)).decode("utf-8")


_MANIFESTS: OrderedDict[tuple[str, str], Manifest] = OrderedDict()


async def _manifest(ctx: ecl.StepContext, artifact_id: str) -> Manifest:
    """The manifest, validated once per process: every chunk step of a 5,000-file codebase needs it."""
    key = (ctx.workflow_id, artifact_id)
    found = _MANIFESTS.get(key)
    if found is None:
        found = Manifest.model_validate(await _json_artifact(ctx, artifact_id))
        _MANIFESTS[key] = found
        while len(_MANIFESTS) > _CACHE_SIZE:
            _MANIFESTS.popitem(last=False)
    return found


async def _document(ctx: ecl.StepContext, name: str, title: str, text: str) -> Document:
    artifact = await ctx.store_artifact(name, text.encode("utf-8"), "text/markdown")
    return Document(name=name, title=title, artifact_id=artifact.id, chars=len(text))


async def _ask(ctx: ecl.StepContext, prompt: str, *, max_tokens: int = DOCUMENT_MAX_TOKENS) -> str:
    system = ctx.prompts.render("analyzer_system")
    reply = await ctx.llm.complete(
        ecl.CompletionRequest(
            messages=[Message(role="user", content=prompt)],
            system_prompt=system,
            max_tokens=max_tokens,
            cache_system=True,
        )
    )
    return reply.content.strip()


def _json_of(text: str) -> Any:
    """The JSON value in a reply (bare, or inside a fenced code block)."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)\n```", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text
    start = min((i for i in (candidate.find("{"), candidate.find("[")) if i != -1), default=-1)
    if start > 0:
        candidate = candidate[start:]
    return json.loads(candidate)


async def _structured(ctx: ecl.StepContext, prompt: str, model: type[M], what: str) -> M:
    """A reply validated against ``model``; one corrective round, then a validation error naming the field."""
    system = ctx.prompts.render("analyzer_system")
    messages = [Message(role="user", content=prompt)]
    problem = ""
    for _attempt in range(2):
        reply = await ctx.llm.complete(
            ecl.CompletionRequest(
                messages=messages, system_prompt=system, max_tokens=DOCUMENT_MAX_TOKENS, cache_system=True
            )
        )
        try:
            return model.model_validate(_json_of(reply.content))
        except json.JSONDecodeError as exc:
            problem = f"the reply is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            problem = f"{where}: {first['msg']}"
        messages = [
            *messages,
            Message(role="assistant", content=reply.content),
            Message(
                role="user", content=f"That {what} does not match the schema ({problem}). Answer again with JSON only."
            ),
        ]
    raise ecl.StepValidationError(
        f"the model's {what} did not match its schema twice: {problem}",
        errors=[{"field": what, "message": problem}],
        retryable=True,
    )


async def _fenced_doc(ctx: ecl.StepContext, doc: Document) -> str:
    """An earlier step's document, fenced as data (model output derived from user code is data too)."""
    return fence(await _text_artifact(ctx, doc.artifact_id), kind="document", name=doc.name)


def _fenced_documents(docs: list[tuple[str, str]]) -> str:
    return "\n\n".join(fence(text, kind="document", name=name) for name, text in docs)


# ---------------------------------------------------------------- step 0: intake


@ecl.step(name="intake")
async def intake(ctx: ecl.StepContext, bundle: AnalysisInput) -> IntakeResult:
    """Check every input, build the manifest and the chunk plan, store them as artifacts."""

    def work() -> tuple[bytes, bytes, list[Chunk], dict[str, Any]]:
        checked = run_intake(bundle)
        chunks = plan_for(checked.manifest, bundle.options)
        inputs = {
            "target": bundle.target,
            "intended_use": bundle.intended_use,
            "vision": checked.vision.text if checked.vision else "",
            "deploy": [{"path": d.path, "text": d.text} for d in checked.deploy],
            "skill": checked.skill.text if checked.skill else "",
        }
        return (
            checked.manifest.model_dump_json().encode(),
            json.dumps(inputs).encode(),
            chunks,
            checked.manifest.summary(),
        )

    manifest_json, inputs_json, chunks, summary = await asyncio.to_thread(work)
    manifest = await ctx.store_artifact("manifest.json", manifest_json, "application/json")
    inputs = await ctx.store_artifact("inputs.json", inputs_json, "application/json")
    plan = await ctx.store_artifact(
        "chunks.json", json.dumps([c.model_dump() for c in chunks]).encode(), "application/json"
    )
    ctx.logger.info("intake done", files=summary["files"], chunks=len(chunks))
    return IntakeResult(
        manifest_artifact=manifest.id,
        inputs_artifact=inputs.id,
        chunks_artifact=plan.id,
        chunk_labels=[c.label() for c in chunks],
        summary=summary,
    )


# ---------------------------------------------------------------- step 1: analysis


@ecl.step(name="summarize-chunk")
async def summarize_chunk(ctx: ecl.StepContext, index: int, total: int, intake_result: IntakeResult) -> ChunkSummary:
    """Map: summarise one chunk of the code (read through the manifest, hash-checked)."""
    manifest = await _manifest(ctx, intake_result.manifest_artifact)
    chunk = Chunk.model_validate((await _json_artifact(ctx, intake_result.chunks_artifact))[index])
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)

    def read() -> str:
        with ManifestReader(manifest) as reader:
            return fenced_chunk(reader, chunk)

    sources = await asyncio.to_thread(read)
    use = fence(inputs["intended_use"], kind="intended-use") if inputs["intended_use"] else ""
    prompt = ctx.prompts.render(
        "analyzer_chunk",
        index=index,
        total=total,
        label=chunk.label(),
        target=inputs["target"],
        intended_use=use,
        sources=sources,
    )
    text = await _ask(ctx, prompt, max_tokens=SUMMARY_MAX_TOKENS)
    header = f"# Chunk {index + 1} of {total}: {chunk.label()}\n\n"
    doc = await _document(ctx, f"summaries/chunk-{index + 1:04d}.md", chunk.label(), header + text)
    return ChunkSummary(index=index, label=chunk.label(), artifact_id=doc.artifact_id)


async def _summaries(ctx: ecl.StepContext, summaries: list[ChunkSummary]) -> str:
    texts = [(f"chunk {s.index + 1}: {s.label}", await _text_artifact(ctx, s.artifact_id)) for s in summaries]
    return _fenced_documents(texts)


@ecl.step(name="grade-report")
async def grade_report(ctx: ecl.StepContext, intake_result: IntakeResult, summaries: list[ChunkSummary]) -> Document:
    """Reduce: the implementation grade report (six dimensions, evidence as path:line)."""
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    prompt = ctx.prompts.render(
        "analyzer_grade",
        target=inputs["target"],
        intended_use=fence(inputs["intended_use"], kind="intended-use") if inputs["intended_use"] else "",
        manifest_summary=json.dumps(intake_result.summary),
        summaries=await _summaries(ctx, summaries),
    )
    return await _document(ctx, "grade-report.md", "Implementation grade report", await _ask(ctx, prompt))


@ecl.step(name="component-breakdown")
async def component_breakdown(
    ctx: ecl.StepContext, intake_result: IntakeResult, summaries: list[ChunkSummary]
) -> Document:
    """Reduce: the current component breakdown."""
    prompt = ctx.prompts.render(
        "analyzer_components",
        manifest_summary=json.dumps(intake_result.summary),
        summaries=await _summaries(ctx, summaries),
    )
    return await _document(ctx, "components.md", "Current component breakdown", await _ask(ctx, prompt))


@ecl.step(name="refactor-breakdown")
async def refactor_breakdown(
    ctx: ecl.StepContext, intake_result: IntakeResult, grade: Document, components: Document
) -> Document:
    """Reduce: the recommended refactor breakdown (from the grade report and the components)."""
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    prompt = ctx.prompts.render(
        "analyzer_refactor",
        target=inputs["target"],
        grade_report=await _fenced_doc(ctx, grade),
        components=await _fenced_doc(ctx, components),
    )
    return await _document(ctx, "refactor.md", "Recommended refactor breakdown", await _ask(ctx, prompt))


# ---------------------------------------------------------------- step 2: architecture


def _read_for_tool(manifest: Manifest, path: str) -> tuple[str, bool]:
    """The answer to one ``read_file`` call: the fenced file, or an error for the model."""
    if not isinstance(path, str) or manifest.file(path) is None:
        return f"{path!r} is not a file of the manifest; use one of the listed paths.", True
    with ManifestReader(manifest) as reader:
        return fence(reader.read_redacted(path), kind="source", path=path), False


@ecl.step(name="architecture")
async def architecture(
    ctx: ecl.StepContext, intake_result: IntakeResult, grade: Document, components: Document, refactor: Document
) -> Document:
    """The language-agnostic ideal architecture; the model may read files with ``read_file``."""
    manifest = await _manifest(ctx, intake_result.manifest_artifact)
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    deploy = "\n\n".join(fence(d["text"], kind="deploy-config", path=d["path"]) for d in inputs["deploy"])
    prompt = ctx.prompts.render(
        "analyzer_architecture",
        vision=fence(inputs["vision"], kind="vision") if inputs["vision"] else "",
        deploy=deploy,
        grade_report=await _fenced_doc(ctx, grade),
        components=await _fenced_doc(ctx, components),
        refactor=await _fenced_doc(ctx, refactor),
        paths="\n".join(f"- {f.path}" for f in manifest.files),
    )
    system = ctx.prompts.render("analyzer_system")
    # Every round trip of the read_file loop sends the documents again: a prompt-cache
    # breakpoint after them makes the later rounds read them from the cache.
    messages = [Message(role="user", content=prompt, cache_prefix=len(prompt))]
    reply: CompletionResponse | None = None
    for _round in range(MAX_TOOL_ROUNDS):
        reply = await ctx.llm.complete(
            ecl.CompletionRequest(
                messages=messages,
                system_prompt=system,
                tools=[READ_FILE_TOOL],
                max_tokens=DOCUMENT_MAX_TOKENS,
                cache_system=True,
            )
        )
        if not reply.tool_calls:
            break
        results = []
        for call in reply.tool_calls:
            content, is_error = await asyncio.to_thread(_read_for_tool, manifest, str(call.input.get("path", "")))
            ctx.logger.info("read_file", path=call.input.get("path"), error=is_error)
            results.append(ToolResult(tool_call_id=call.id, content=content, is_error=is_error))
        messages += [
            Message(role="assistant", content=reply.content, tool_calls=reply.tool_calls),
            Message(role="user", content="", tool_results=results),
        ]
    else:
        messages.append(Message(role="user", content="No more file reads: write the architecture document now."))
        reply = await ctx.llm.complete(
            ecl.CompletionRequest(
                messages=messages, system_prompt=system, max_tokens=DOCUMENT_MAX_TOKENS, cache_system=True
            )
        )
    assert reply is not None
    return await _document(ctx, "architecture.md", "Ideal architecture", reply.content.strip())


# ---------------------------------------------------------------- step 3: planning


@ecl.step(name="project-plan")
async def project_plan(ctx: ecl.StepContext, intake_result: IntakeResult, architecture_doc: Document) -> PlanResult:
    """The phased plan as validated structured output (and as Markdown)."""
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    prompt = ctx.prompts.render(
        "analyzer_plan",
        target=inputs["target"],
        skill=fence(inputs["skill"], kind="skill", name="SKILL.md") if inputs["skill"] else "",
        architecture=fence(
            await _text_artifact(ctx, architecture_doc.artifact_id), kind="document", name="architecture.md"
        ),
        schema=json.dumps(ProjectPlan.model_json_schema()),
    )
    plan = await _structured(ctx, prompt, ProjectPlan, "project plan")
    stored = await ctx.store_artifact("plan.json", plan.model_dump_json(indent=2).encode(), "application/json")
    document = await _document(ctx, "plan.md", "Project plan", plan.markdown())
    return PlanResult(plan=plan, plan_artifact=stored.id, document=document)


# ---------------------------------------------------------------- step 4: specs


@ecl.step(name="implementation-spec")
async def implementation_spec(
    ctx: ecl.StepContext,
    intake_result: IntakeResult,
    architecture_doc: Document,
    phase: Phase,
    number: int,
    phases: int,
    feedback: str = "",
) -> Document:
    """One phase's spec, ready to hand to a coding agent (again, with feedback, in a revision round)."""
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    prompt = ctx.prompts.render(
        "analyzer_spec",
        number=number,
        phases=phases,
        phase_name=phase.name,
        target=inputs["target"],
        skill=fence(inputs["skill"], kind="skill", name="SKILL.md") if inputs["skill"] else "",
        feedback=fence(feedback, kind="review") if feedback else "",
        phase=fence(phase.model_dump_json(indent=2), kind="plan-phase", number=number),
        architecture=fence(
            await _text_artifact(ctx, architecture_doc.artifact_id), kind="document", name="architecture.md"
        ),
    )
    title = f"Phase {number}: {phase.name}"
    return await _document(ctx, f"specs/phase-{number}.md", title, await _ask(ctx, prompt))


# ---------------------------------------------------------------- step 5: assessment


def _implementation_sources(path: str, options: AnalyzerOptions) -> str:
    """The new implementation's files, fenced, within two chunk budgets (the rest named only)."""
    manifest = build_manifest(Path(path), options.limits)
    with ManifestReader(manifest) as reader:
        chunks = plan_chunks(
            manifest, options.chunk_tokens, lambda p: [len(x) for x in reader.read_redacted(p).splitlines(True)]
        )
        shown = chunks[:2]
        text = "\n\n".join(fenced_chunk(reader, c) for c in shown)
    rest = [p for c in chunks[2:] for p in c.paths]
    if rest:
        text += "\n\nFiles not shown (over the budget): " + ", ".join(rest)
    return text


def _check_implementation(path: str) -> None:
    if not Path(path).exists():
        raise InputValidationError(
            f"implementation {path!r} does not exist",
            errors=[{"field": "implementation", "message": "does not exist", "value": path}],
        )


@ecl.step(name="assess-standards")
async def assess_standards(
    ctx: ecl.StepContext, intake_result: IntakeResult, implementation: str, options: AnalyzerOptions
) -> Document:
    """The standards analysis of the new implementation against SKILL.md."""
    _check_implementation(implementation)
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    sources = await asyncio.to_thread(_implementation_sources, implementation, options)
    prompt = ctx.prompts.render(
        "analyzer_standards",
        target=inputs["target"],
        skill=fence(inputs["skill"], kind="skill", name="SKILL.md") if inputs["skill"] else "",
        sources=sources,
    )
    return await _document(ctx, "standards.md", "Standards analysis", await _ask(ctx, prompt))


@ecl.step(name="assess-adherence")
async def assess_adherence(
    ctx: ecl.StepContext, plan: PlanResult, implementation: str, options: AnalyzerOptions
) -> AdherenceResult:
    """The plan-adherence report, stage by stage, with a score and revision requests."""
    _check_implementation(implementation)
    sources = await asyncio.to_thread(_implementation_sources, implementation, options)
    prompt = ctx.prompts.render(
        "analyzer_adherence",
        plan=fence(plan.plan.markdown(), kind="document", name="plan.md"),
        sources=sources,
        schema=json.dumps(Adherence.model_json_schema()),
    )
    adherence = await _structured(ctx, prompt, Adherence, "adherence report")
    document = await _document(ctx, "adherence.md", "Plan adherence", adherence.markdown())
    return AdherenceResult(adherence=adherence, document=document)


# ---------------------------------------------------------------- step 6: delivery


@ecl.step(name="writeup")
async def writeup(
    ctx: ecl.StepContext,
    intake_result: IntakeResult,
    grade: Document,
    architecture_doc: Document,
    plan: PlanResult,
    assessment: list[Document],
) -> Document:
    """The final write-up."""
    inputs = await _json_artifact(ctx, intake_result.inputs_artifact)
    assessed = [(d.name, await _text_artifact(ctx, d.artifact_id)) for d in assessment]
    prompt = ctx.prompts.render(
        "analyzer_writeup",
        target=inputs["target"],
        grade_report=await _fenced_doc(ctx, grade),
        architecture=fence(
            await _text_artifact(ctx, architecture_doc.artifact_id), kind="document", name="architecture.md"
        ),
        plan=fence(plan.plan.markdown(), kind="document", name="plan.md"),
        assessment=_fenced_documents(assessed) if assessed else "",
    )
    return await _document(ctx, "writeup.md", "Migration analysis: write-up", await _ask(ctx, prompt))


@ecl.step(name="slides")
async def slides(ctx: ecl.StepContext, writeup_doc: Document) -> Document:
    """The presentation in Marp Markdown."""
    prompt = ctx.prompts.render(
        "analyzer_slides",
        writeup=await _fenced_doc(ctx, writeup_doc),
    )
    text = await _ask(ctx, prompt)
    if not text.lstrip().startswith("---"):
        text = "---\nmarp: true\n---\n\n" + text  # Marp needs its front matter
    return await _document(ctx, "slides.md", "Presentation (Marp)", text)


@ecl.step(name="package")
async def package(
    ctx: ecl.StepContext, intake_result: IntakeResult, documents: list[Document], facts: dict[str, str]
) -> Delivery:
    """The delivery folder as artifacts: every document, slides.html, index.md, the manifest, one .zip."""
    files: dict[str, bytes] = {}
    entries: dict[str, str] = {}
    for doc in documents:
        files[doc.name] = await ctx.retrieve_artifact(doc.artifact_id)
        entries[doc.name] = doc.title
    if "slides.md" in files:
        files["slides.html"] = slides_html(files["slides.md"].decode("utf-8"), "Migration analysis").encode()
        entries["slides.html"] = "Presentation (self-contained HTML)"
    files["manifest.json"] = await ctx.retrieve_artifact(intake_result.manifest_artifact)
    entries["manifest.json"] = "Manifest of the analysed code (path, language, size, lines, sha256)"
    entries["deliverables.zip"] = "Everything above in one archive"
    files["index.md"] = index_markdown("Codebase migration analysis", entries, facts).encode()
    stored: dict[str, str] = {}
    for name in ("slides.html", "index.md"):
        if name in files:
            kind = "text/html" if name.endswith(".html") else "text/markdown"
            stored[name] = (await ctx.store_artifact(name, files[name], kind)).id
    for doc in documents:
        stored[doc.name] = doc.artifact_id
    stored["manifest.json"] = intake_result.manifest_artifact
    archive = await ctx.store_artifact("deliverables.zip", zip_files(files), "application/zip")
    stored["deliverables.zip"] = archive.id
    return Delivery(files=dict(sorted(stored.items())), package_artifact=archive.id)
