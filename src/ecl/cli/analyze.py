"""``ecl analyze``: the codebase-migration analyzer from the command line.

The analyzer, its prompts and the artifact store are imported when the command runs, not
when the app is built: every other command's start would pay for them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.options import ConfigOpt, FormatOpt, LlmOpt
from ecl.cli.output import check_format, echo_json
from ecl.cli.run import _interrupted, _say_waiting, exit_for, print_result
from ecl.cli.runtime import Progress, check_llm_choice, open_command_engine, settings_from
from ecl.config import Settings
from ecl.core.errors import InputValidationError
from ecl.core.results import WorkflowResult
from ecl.core.state import WorkflowState
from ecl.llm.budget import parse_amount

if TYPE_CHECKING:
    from ecl.analyzer.bundle import AnalysisInput

__all__ = ["ChunkProgress", "analysis_input", "register", "write_deliverables"]


def analysis_input(
    settings: Settings,
    path: Path,
    *,
    target: str,
    use: str,
    vision: Path | None,
    deploy: list[Path],
    skill: Path | None,
    implementation: Path | None,
    skip_assessment: bool,
    budget_tokens: int | None,
    budget_usd: Decimal | None = None,
) -> AnalysisInput:
    """The workflow input from the command's options; local paths made absolute."""
    from ecl.analyzer.bundle import AnalysisInput, AnalyzerOptions

    if implementation is not None and skip_assessment:
        raise InputValidationError(
            "give --implementation or --skip-assessment, not both",
            errors=[{"field": "implementation", "message": "conflicts with --skip-assessment"}],
        )
    if not target.strip():
        raise InputValidationError(
            "--target must name the target language or stack, e.g. rust",
            errors=[{"field": "target", "message": "empty", "value": target}],
        )

    def absolute(p: Path | None) -> str | None:
        return str(p.absolute()) if p is not None else None

    return AnalysisInput(
        code_path=str(path.absolute()),
        target=target.strip(),
        intended_use=use,
        vision=absolute(vision),
        deploy=[str(p.absolute()) for p in deploy],
        skill=absolute(skill),
        implementation=absolute(implementation),
        skip_assessment=skip_assessment,
        budget_tokens=budget_tokens,
        budget_usd=budget_usd,
        options=AnalyzerOptions.from_settings(settings.analyzer),
    )


def dry_run_document(data: AnalysisInput, settings: Settings) -> dict[str, Any]:
    """Intake and chunking only: the manifest summary, the chunks and the estimated input tokens."""
    from ecl.analyzer.bundle import CostEstimate, estimate_cost, plan_for, run_intake
    from ecl.analyzer.prompting import AnalyzerPrompts

    intake = run_intake(data)
    chunks = plan_for(intake.manifest, data.options)
    prompts = AnalyzerPrompts(settings.prompts_path)
    estimate: CostEstimate = estimate_cost(
        chunks, prompts, assessment=not data.skip_assessment and data.implementation is not None
    )
    return {
        "manifest": intake.manifest.summary(),
        "inputs": {
            "target": data.target,
            "vision": intake.vision.path if intake.vision else None,
            "deploy": [d.path for d in intake.deploy],
            "skill": intake.skill.path if intake.skill else None,
            "implementation": data.implementation,
            "skip_assessment": data.skip_assessment,
        },
        "chunks": estimate.chunks,
        "chunk_tokens": data.options.chunk_tokens,
        "estimated_input_tokens": {
            "total": estimate.total,
            "chunk_summaries": estimate.map_tokens,
            "later_steps": estimate.later_tokens,
        },
        "budget_tokens": data.budget_tokens,
        "budget_usd": None if data.budget_usd is None else str(data.budget_usd),
    }


def _print_dry_run(doc: dict[str, Any]) -> None:
    manifest = doc["manifest"]
    table = Table(show_header=False, box=None, title="dry run: no LLM called")
    table.add_row("codebase", f"{manifest['source']} ({manifest['kind']})")
    table.add_row("files", f"{manifest['files']} ({manifest['bytes']:,} bytes, {manifest['lines']:,} lines)")
    table.add_row("languages", ", ".join(f"{k} {v}" for k, v in manifest["languages"].items()) or "-")
    table.add_row("skipped", ", ".join(f"{v} {k}" for k, v in manifest["skipped"].items()) or "-")
    table.add_row("secrets redacted", str(manifest["redactions"]))
    table.add_row("target", doc["inputs"]["target"])
    table.add_row("chunks", f"{doc['chunks']} (budget {doc['chunk_tokens']:,} tokens each)")
    tokens = doc["estimated_input_tokens"]
    table.add_row(
        "estimated input tokens",
        f"{tokens['total']:,} (chunk summaries {tokens['chunk_summaries']:,}, later steps ~{tokens['later_steps']:,})",
    )
    budget = [f"{doc['budget_tokens']:,} tokens"] if doc["budget_tokens"] is not None else []
    budget += [f"${doc['budget_usd']}"] if doc.get("budget_usd") is not None else []
    if budget:
        table.add_row("budget", " and ".join(budget))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``analyze``."""

    @app.command("analyze")
    def analyze(
        path: Annotated[Path, typer.Argument(help="The codebase: a folder, a .zip or a .tar.gz.")],
        target: Annotated[str, typer.Option("--target", help="Target language or stack, e.g. rust.")],
        use: Annotated[str, typer.Option("--use", help="What the code is for (intended use).")] = "",
        vision: Annotated[Path | None, typer.Option("--vision", help="Vision document.")] = None,
        deploy: Annotated[
            list[Path] | None, typer.Option("--deploy", help="Deployment config file (repeatable).")
        ] = None,
        skill: Annotated[Path | None, typer.Option("--skill", help="SKILL.md: conventions for the target.")] = None,
        implementation: Annotated[
            Path | None, typer.Option("--implementation", help="The new implementation to assess.")
        ] = None,
        skip_assessment: Annotated[
            bool, typer.Option("--skip-assessment", help="Skip the quality assessment step.")
        ] = False,
        wait_for_implementation: Annotated[
            bool,
            typer.Option(
                "--wait-for-implementation",
                help="Without --implementation: wait (durably) for `ecl signal ID implementation --path DIR` "
                "instead of skipping the assessment.",
            ),
        ] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Write the deliverables into this folder.")] = None,
        budget_tokens: Annotated[
            int | None, typer.Option("--budget-tokens", help="Token budget of the whole run.", min=1)
        ] = None,
        budget_usd: Annotated[
            str | None, typer.Option("--budget-usd", help="Most the whole run may spend on LLM calls (USD).")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Intake and chunking only: print the plan and the token estimate.")
        ] = False,
        workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id (idempotent).")] = None,
        llm: LlmOpt = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Analyse a codebase for a migration: grade it, design, plan, specify, assess, deliver."""
        from ecl.analyzer.workflow import WORKFLOW_ID

        check_format(fmt)
        check_llm_choice(llm)
        settings = settings_from(config)
        if wait_for_implementation and (implementation is not None or skip_assessment):
            raise InputValidationError(
                "--wait-for-implementation goes without --implementation and --skip-assessment",
                errors=[{"field": "wait_for_implementation", "message": "conflicts with the other assessment options"}],
            )
        # From the command line the new implementation usually does not exist yet (the run
        # plans it), so without --implementation the assessment is skipped unless asked to wait.
        skipped_by_default = implementation is None and not skip_assessment and not wait_for_implementation
        data = analysis_input(
            settings,
            path,
            target=target,
            use=use,
            vision=vision,
            deploy=list(deploy or []),
            skill=skill,
            implementation=implementation,
            skip_assessment=skip_assessment or skipped_by_default,
            budget_tokens=budget_tokens,
            budget_usd=None if budget_usd is None else parse_amount(budget_usd, field="--budget-usd"),
        )
        if skipped_by_default and fmt == "table" and not dry_run:
            typer.echo(
                "no --implementation: the quality assessment (step 5) is skipped "
                "(give --implementation DIR, or --wait-for-implementation to supply it later with ecl signal)",
                err=True,
            )
        if dry_run:
            doc = dry_run_document(data, settings)
            if fmt == "json":
                echo_json(doc)
            elif fmt == "quiet":
                typer.echo(str(doc["chunks"]))
            else:
                _print_dry_run(doc)
            return
        # Intake runs here first so that a bad input is a one-line error before any workflow
        # exists; the workflow's own intake step checks again (the code may change meanwhile).
        plan = dry_run_document(data, settings)
        progress = ChunkProgress(quiet=fmt != "table", total=int(plan["chunks"]))
        submitted: list[str] = []

        async def go() -> WorkflowResult | None:
            async with open_command_engine(settings, llm=llm, progress=progress) as eng:
                wid = await eng.submit(WORKFLOW_ID, data.model_dump(mode="json"), workflow_id)
                submitted.append(wid)
                progress.workflow_id = wid
                if data.implementation is None and not data.skip_assessment and fmt == "table":
                    typer.echo(
                        f"the assessment (step 5) will wait for the new implementation: "
                        f"ecl signal {wid} implementation --path DIR (or use --implementation / --skip-assessment)",
                        err=True,
                    )
                # A new workflow, or an existing one (same --id): finish it here or wait for it.
                result: WorkflowResult = await eng.resume(wid, on_wait=_say_waiting)
                if out is not None and result.state is WorkflowState.COMPLETED:
                    await write_deliverables(settings, result, out)
                return result

        try:
            result = asyncio.run(go())
        except KeyboardInterrupt:
            _interrupted(submitted[0] if submitted else None)
            return
        assert result is not None
        _print_analysis(result, fmt, out)
        exit_for(result)


class ChunkProgress(Progress):
    """Progress with ``N/M chunks`` lines for the fan-out of step 1."""

    def __init__(self, *, quiet: bool, total: int) -> None:
        super().__init__(quiet=quiet)
        self.total = total
        self.done = 0
        self.workflow_id = ""
        self._chunk_executions: set[str] = set()

    def __call__(self, event: dict[str, Any]) -> None:
        kind, execution = event.get("event"), str(event.get("execution_id") or "")
        if kind == "step_started" and event.get("step_id") == "summarize-chunk":
            if not self._chunk_executions:
                self._line(f"→ summarize-chunk: {self.total} chunks")
            self._chunk_executions.add(execution)
            return
        if kind == "step_finished" and execution in self._chunk_executions:
            self._chunk_executions.discard(execution)
            if event.get("state") == "completed":
                self.done += 1
                self._line(f"✓ {self.done}/{self.total} chunks")
            return
        super().__call__(event)


async def write_deliverables(settings: Settings, result: WorkflowResult, out: Path) -> list[Path]:
    """Copy every deliverable of a completed run from the artifact store into ``out``."""
    delivery = result.outputs.get("package") or {}
    files: dict[str, str] = dict(delivery.get("files") or {})
    if not files:
        raise InputValidationError(
            f"workflow {result.workflow_id} has no deliverables to write",
            errors=[{"field": "out", "message": "no deliverables", "value": str(out)}],
        )
    from ecl.artifacts.local import LocalArtifactStore
    from ecl.store.database import create_engine
    from ecl.store.repositories import ArtifactRepository

    db = create_engine(settings.database.url)
    store = LocalArtifactStore(Path(settings.artifacts.path), ArtifactRepository(db))
    try:
        contents = {name: await store.retrieve(result.workflow_id, aid) for name, aid in sorted(files.items())}
    finally:
        await db.dispose()
    return await asyncio.to_thread(_write_files, out, contents)


def _write_files(out: Path, contents: dict[str, bytes]) -> list[Path]:
    root = out.resolve()
    written: list[Path] = []
    for name, content in contents.items():
        target = (root / name).resolve()
        if not target.is_relative_to(root):  # names come from the run's own records; still, stay inside
            raise InputValidationError(
                f"deliverable {name!r} would leave {out}",
                errors=[{"field": "out", "message": "path escapes", "value": name}],
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


def _print_analysis(result: WorkflowResult, fmt: str, out: Path | None) -> None:
    if fmt != "table":
        print_result(result, fmt)
        return
    output = result.output if isinstance(result.output, dict) else {}
    table = Table(show_header=False, box=None)
    table.add_row("workflow", result.workflow_id)
    table.add_row("state", result.state.value)
    if output:
        table.add_row("target", str(output.get("target")))
        table.add_row("chunks", str(output.get("chunks")))
        table.add_row("phases", str(output.get("phases")))
        score = output.get("adherence_score")
        table.add_row("assessment", "skipped" if score is None else f"adherence {score:.2f}")
        if output.get("revised_phases"):
            table.add_row("revised specs", ", ".join(str(n) for n in output["revised_phases"]))
    table.add_row("revisions", str(result.revisions))
    table.add_row("tokens", f"{result.tokens.total} (in {result.tokens.input}, out {result.tokens.output})")
    if result.duration_ms is not None:
        table.add_row("time", f"{result.duration_ms / 1000:.2f}s")
    if out is not None and result.state is WorkflowState.COMPLETED:
        table.add_row("deliverables", f"{out}/index.md")
    if result.error:
        table.add_row("error", f"{result.error.get('type')}: {result.error.get('message')}")
    Console().print(table)
