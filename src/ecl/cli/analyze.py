"""``ecl analyze``: the codebase-migration analyzer from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.analyzer.bundle import AnalysisInput, AnalyzerOptions, CostEstimate, estimate_cost, plan_for, run_intake
from ecl.analyzer.prompting import AnalyzerPrompts
from ecl.cli.output import check_format, echo_json
from ecl.cli.runtime import check_llm_choice, settings_from
from ecl.config import Settings
from ecl.core.errors import InputValidationError

__all__ = ["analysis_input", "register"]


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
) -> AnalysisInput:
    """The workflow input from the command's options; local paths made absolute."""
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
        options=AnalyzerOptions.from_settings(settings.analyzer),
    )


def dry_run_document(data: AnalysisInput, settings: Settings) -> dict[str, Any]:
    """Intake and chunking only: the manifest summary, the chunks and the estimated input tokens."""
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
    if doc["budget_tokens"] is not None:
        table.add_row("budget", f"{doc['budget_tokens']:,} tokens")
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
        out: Annotated[Path | None, typer.Option("--out", help="Write the deliverables into this folder.")] = None,
        budget_tokens: Annotated[
            int | None, typer.Option("--budget-tokens", help="Token budget of the whole run.", min=1)
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Intake and chunking only: print the plan and the token estimate.")
        ] = False,
        workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id (idempotent).")] = None,
        llm: Annotated[str | None, typer.Option(help="anthropic, openai or mock.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table, json or quiet.")] = "table",
        config: Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")] = None,
    ) -> None:
        """Analyse a codebase for a migration: grade it, design, plan, specify, assess, deliver."""
        check_format(fmt)
        check_llm_choice(llm)
        settings = settings_from(config)
        data = analysis_input(
            settings,
            path,
            target=target,
            use=use,
            vision=vision,
            deploy=list(deploy or []),
            skill=skill,
            implementation=implementation,
            skip_assessment=skip_assessment,
            budget_tokens=budget_tokens,
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
        _ = (out, workflow_id)
        raise InputValidationError(
            "ecl analyze runs only with --dry-run in this version",
            errors=[{"field": "dry_run", "message": "required", "value": False}],
        )
