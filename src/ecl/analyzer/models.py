"""The analyzer's step outputs and structured documents (journaled JSON: keep them small).

Documents themselves live in the artifact store; outputs carry their artifact ids.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "Adherence",
    "AdherenceResult",
    "AnalysisResult",
    "ChunkSummary",
    "Delivery",
    "Document",
    "IntakeResult",
    "Phase",
    "PlanResult",
    "ProjectPlan",
    "RevisionRequest",
    "Stage",
    "StageCheck",
]


class Document(BaseModel):
    """One Markdown deliverable stored as an artifact."""

    name: str
    """Its path in the delivery folder, e.g. ``grade-report.md`` or ``specs/phase-1.md``."""
    title: str
    artifact_id: str
    chars: int


class IntakeResult(BaseModel):
    """Step 0: the manifest and inputs (artifacts) and the chunk plan's shape."""

    manifest_artifact: str
    inputs_artifact: str
    chunks_artifact: str
    chunk_labels: list[str]
    summary: dict[str, Any]


class ChunkSummary(BaseModel):
    """Step 1 (map): the summary of one chunk."""

    index: int
    label: str
    artifact_id: str


class Stage(BaseModel):
    """One stage of a phase."""

    name: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    acceptance_criteria: list[str] = Field(min_length=1)


class Phase(BaseModel):
    """One phase of the plan."""

    name: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    stages: list[Stage] = Field(min_length=1)


class ProjectPlan(BaseModel):
    """Step 3: the phased plan (validated structured output)."""

    title: str = Field(min_length=1)
    summary: str = ""
    phases: list[Phase] = Field(min_length=1, max_length=12)

    def markdown(self) -> str:
        """The plan as Markdown."""
        lines = [f"# {self.title}", ""]
        if self.summary:
            lines += [self.summary, ""]
        for p_index, phase in enumerate(self.phases, start=1):
            lines += [f"## Phase {p_index}: {phase.name}", "", f"**Goal:** {phase.goal}", ""]
            for s_index, stage in enumerate(phase.stages, start=1):
                lines += [f"### Stage {p_index}.{s_index}: {stage.name}", "", f"**Goal:** {stage.goal}", ""]
                lines += ["**Tasks:**", ""] + [f"{n}. {t}" for n, t in enumerate(stage.tasks, start=1)] + [""]
                lines += ["**Acceptance criteria:**", ""] + [f"- {c}" for c in stage.acceptance_criteria] + [""]
        return "\n".join(lines)


class PlanResult(BaseModel):
    """Step 3's output: the plan and its Markdown document."""

    plan: ProjectPlan
    plan_artifact: str
    """The plan as JSON."""
    document: Document


class StageCheck(BaseModel):
    """Adherence of one stage."""

    phase: str
    stage: str
    status: Literal["done", "partial", "missing"]
    evidence: str


class RevisionRequest(BaseModel):
    """A change the assessment asks of one phase's spec."""

    phase: int = Field(ge=1)
    """The phase number (1-based)."""
    request: str = Field(min_length=1)


class Adherence(BaseModel):
    """Step 5: the plan-adherence report (validated structured output)."""

    score: float = Field(ge=0.0, le=1.0)
    summary: str
    stages: list[StageCheck]
    revision_requests: list[RevisionRequest] = Field(default_factory=list)

    def markdown(self) -> str:
        """The report as Markdown."""
        lines = ["# Plan adherence", "", f"**Score:** {self.score:.2f}", "", self.summary, ""]
        lines += ["| phase | stage | status | evidence |", "|---|---|---|---|"]
        for check in self.stages:
            evidence = check.evidence.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {check.phase} | {check.stage} | {check.status} | {evidence} |")
        if self.revision_requests:
            lines += ["", "## Revision requests", ""]
            lines += [f"- Phase {r.phase}: {r.request}" for r in self.revision_requests]
        return "\n".join(lines) + "\n"


class AdherenceResult(BaseModel):
    """Step 5's adherence output."""

    adherence: Adherence
    document: Document


class Delivery(BaseModel):
    """Step 6: every deliverable (path → artifact id) and the package."""

    files: dict[str, str]
    package_artifact: str


class AnalysisResult(BaseModel):
    """What the ``codebase-migration`` workflow returns."""

    target: str
    chunks: int
    phases: int
    documents: dict[str, str]
    """Delivery path → artifact id."""
    package_artifact: str
    adherence_score: float | None = None
    revised_phases: list[int] = Field(default_factory=list)
    assessment: Literal["done", "skipped"] = "done"
