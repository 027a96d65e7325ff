"""The analyzer's input bundle: what a run is asked to analyse, checked before it starts.

The same JSON object is the input of ``ecl run codebase-migration --input-file`` and of
``POST /workflows``; ``ecl analyze`` builds it from its options. Paths are server-side
paths: the HTTP API accepts them only under ``analyzer.allowed_roots``
(:func:`check_allowed_roots`), resolved first so that neither ``..`` nor a symbolic link
can lead outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ecl.analyzer.chunking import Chunk, plan_chunks
from ecl.analyzer.intake import InputDocument, IntakeLimits, build_manifest, read_input_document
from ecl.analyzer.manifest import Manifest, ManifestReader
from ecl.analyzer.prompting import AnalyzerPrompts
from ecl.core.errors import InputValidationError

__all__ = [
    "ANALYZER_ID",
    "AnalysisInput",
    "AnalyzerOptions",
    "CostEstimate",
    "Intake",
    "check_allowed_roots",
    "estimate_cost",
    "line_lengths",
    "path_fields",
    "plan_for",
    "prepare_submission",
    "run_intake",
]


ANALYZER_ID = "codebase-migration"
"""The workflow id of the analyzer."""


class AnalyzerOptions(BaseModel):
    """The ``analyzer.*`` settings a run uses; filled from the configuration at submission."""

    max_files: int = Field(default=10_000, ge=1)
    max_file_bytes: int = Field(default=1024 * 1024, ge=1)
    max_total_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    chunk_tokens: int = Field(default=24_000, ge=200)
    concurrency: int = Field(default=4, ge=1, le=256)
    adherence_threshold: float = Field(default=0.7, ge=0.0, le=1.0)

    @property
    def limits(self) -> IntakeLimits:
        """The intake limits."""
        return IntakeLimits(self.max_files, self.max_file_bytes, self.max_total_bytes)

    @classmethod
    def from_settings(cls, analyzer: Any) -> AnalyzerOptions:
        """From an :class:`ecl.config.AnalyzerSettings` (or anything with the same fields)."""
        return cls(**{name: getattr(analyzer, name) for name in cls.model_fields})


class AnalysisInput(BaseModel):
    """The input of the ``codebase-migration`` workflow."""

    code_path: str = Field(min_length=1)
    """A folder, a ``.zip`` or a ``.tar.gz`` of the code to analyse."""
    target: str = Field(min_length=1, max_length=200)
    """The target language or stack, e.g. ``rust`` or ``rust + tokio``."""
    intended_use: str = Field(default="", max_length=20_000)
    vision: str | None = None
    """A vision document (path)."""
    deploy: list[str] = Field(default_factory=list)
    """Deployment configuration files (paths)."""
    skill: str | None = None
    """A ``SKILL.md`` of conventions for the target (path)."""
    implementation: str | None = None
    """The new implementation to assess (folder or archive); absent: wait for the promise."""
    skip_assessment: bool = False
    budget_tokens: int | None = Field(default=None, ge=1)
    """The run's token budget (enforced as every workflow's ``budget_tokens``: docs/costs.md)."""
    budget_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    """The run's budget in USD (every workflow's ``budget_usd``; the workflow function does not take it)."""
    options: AnalyzerOptions = Field(default_factory=AnalyzerOptions)


def prepare_submission(data: dict[str, Any], analyzer: Any, *, from_api: bool) -> dict[str, Any]:
    """The input of a ``codebase-migration`` submission with the configured ``analyzer.*`` options.

    From the HTTP API every path must lie under ``analyzer.allowed_roots`` and the options
    are the server's (a client cannot raise the server's limits); from the command line the
    bundle's own ``options`` win over the configuration. An input that is not a valid bundle
    is returned as is: the engine's validation names the field.
    """
    try:
        bundle = AnalysisInput.model_validate(data)
    except ValidationError:
        return data
    if from_api:
        check_allowed_roots(bundle, list(analyzer.allowed_roots))
        options = AnalyzerOptions.from_settings(analyzer).model_dump()
    else:
        options = {**AnalyzerOptions.from_settings(analyzer).model_dump(), **dict(data.get("options") or {})}
    return {**data, "options": options}


def path_fields(data: AnalysisInput) -> list[tuple[str, str]]:
    """Every ``(field, path)`` of the input that names a server-side file or folder."""
    found = [("code_path", data.code_path)]
    if data.vision:
        found.append(("vision", data.vision))
    found.extend((f"deploy[{i}]", p) for i, p in enumerate(data.deploy))
    if data.skill:
        found.append(("skill", data.skill))
    if data.implementation:
        found.append(("implementation", data.implementation))
    return found


def check_allowed_roots(data: AnalysisInput, roots: list[str]) -> None:
    """Refuse any path that is not inside one of ``roots`` once resolved (``..`` and links followed)."""
    resolved_roots = [Path(root).resolve() for root in roots]
    for field, value in path_fields(data):
        path = Path(value)
        if not path.is_absolute() or not resolved_roots:
            allowed = False
        else:
            real = path.resolve()
            allowed = any(real == root or real.is_relative_to(root) for root in resolved_roots)
        if not allowed:
            why = (
                "the API accepts no server-side paths (analyzer.allowed_roots is empty)"
                if not resolved_roots
                else "it is not an absolute path inside analyzer.allowed_roots"
            )
            raise InputValidationError(
                f"{field} {value!r} is not allowed: {why}",
                errors=[{"field": f"input.{field}", "message": "path not allowed", "value": value}],
            )


@dataclass
class Intake:
    """A checked input: the manifest and the single-file documents."""

    manifest: Manifest
    vision: InputDocument | None
    deploy: list[InputDocument]
    skill: InputDocument | None


def run_intake(data: AnalysisInput) -> Intake:
    """Check every input and build the manifest; raises a one-line error for the first problem."""
    limits = data.options.limits
    if data.implementation is not None and data.skip_assessment:
        raise InputValidationError(
            "give implementation or skip_assessment, not both",
            errors=[{"field": "implementation", "message": "conflicts with skip_assessment"}],
        )
    vision = read_input_document(Path(data.vision), "vision", limits) if data.vision else None
    deploy = [read_input_document(Path(p), f"deploy[{i}]", limits) for i, p in enumerate(data.deploy)]
    skill = read_input_document(Path(data.skill), "skill", limits) if data.skill else None
    if data.implementation is not None:
        implementation = Path(data.implementation)
        if not implementation.exists():
            raise InputValidationError(
                f"implementation {data.implementation!r} does not exist",
                errors=[{"field": "implementation", "message": "does not exist", "value": data.implementation}],
            )
    manifest = build_manifest(Path(data.code_path), limits)
    return Intake(manifest, vision, deploy, skill)


def line_lengths(reader: ManifestReader) -> Any:
    """A ``line_lengths`` callback for :func:`~ecl.analyzer.chunking.plan_chunks` reading through ``reader``."""

    def lengths(path: str) -> list[int]:
        return [len(line) for line in reader.read_redacted(path).splitlines(keepends=True)]

    return lengths


@dataclass(frozen=True)
class CostEstimate:
    """Estimated input tokens of a run, before any LLM call."""

    chunks: int
    map_tokens: int
    """The chunk-summary requests."""
    later_tokens: int
    """Reduce, architecture, planning, specs, assessment and delivery (rougher)."""

    @property
    def total(self) -> int:
        """Both together."""
        return self.map_tokens + self.later_tokens


SUMMARY_TOKENS = 1200
"""Expected size of one chunk summary (the reduce prompts carry all of them)."""
DOCUMENT_TOKENS = 3000
"""Expected size of one generated document (grade report, architecture, one spec, ...)."""
EXPECTED_PHASES = 4


def estimate_cost(chunks: list[Chunk], prompts: AnalyzerPrompts, *, assessment: bool) -> CostEstimate:
    """Input tokens: exact-ish for the map step (the chunk text plus its prompt), modelled after it."""
    system = math.ceil(len(prompts.system()) / 4)
    template = math.ceil(
        len(
            prompts.render(
                "analyzer_chunk", index=0, total=len(chunks), label="", target="", intended_use="", sources=""
            )
        )
        / 4
    )
    map_tokens = sum(c.tokens + system + template for c in chunks)
    summaries = len(chunks) * SUMMARY_TOKENS
    reduce_tokens = 2 * summaries + 2 * DOCUMENT_TOKENS  # grade + components read the summaries; refactor reads both
    design = 3 * DOCUMENT_TOKENS + 2 * DOCUMENT_TOKENS  # architecture (+ a file read) and the plan
    specs = EXPECTED_PHASES * 2 * DOCUMENT_TOKENS
    assess = (2 * (DOCUMENT_TOKENS + map_tokens)) if assessment else 0
    delivery = 4 * DOCUMENT_TOKENS
    later = reduce_tokens + design + specs + assess + delivery + 10 * system
    return CostEstimate(len(chunks), map_tokens, later)


def plan_for(manifest: Manifest, options: AnalyzerOptions) -> list[Chunk]:
    """The chunk plan of ``manifest`` with the run's budget."""
    with ManifestReader(manifest) as reader:
        return plan_chunks(manifest, options.chunk_tokens, line_lengths(reader))
