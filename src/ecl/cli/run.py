"""``ecl run`` and ``ecl resume``: run a workflow in the foreground and print its result."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.options import ConfigOpt, EngineOpt, FormatOpt, LlmOpt, ModulesOpt
from ecl.cli.output import check_format
from ecl.cli.runtime import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    Progress,
    check_llm_choice,
    open_command_engine,
    settings_from,
)
from ecl.core.durable import OwnerWait
from ecl.core.errors import InputValidationError
from ecl.core.json_values import check_json, parse_json
from ecl.core.results import WorkflowResult
from ecl.core.state import WorkflowState
from ecl.llm.budget import parse_amount, parse_budget

__all__ = ["parse_input", "print_result", "register"]


def parse_input(
    input_json: str | None, input_file: Path | None, topic: str | None, require_approval: bool
) -> dict[str, Any]:
    """Build the workflow input from ``--input``, ``--input-file`` and the shortcuts."""
    if input_json is not None and input_file is not None:
        raise InputValidationError(
            "give --input or --input-file, not both",
            errors=[{"field": "input", "message": "both --input and --input-file given"}],
        )
    data: Any = {}
    source = "--input"
    text: str | bytes | None = input_json
    if input_file is not None:
        source = f"--input-file {input_file}"
        try:
            text = input_file.read_bytes()  # parse_json says so if it is not UTF-8
        except OSError as exc:
            raise InputValidationError(
                f"cannot read --input-file {input_file}: {exc.strerror}",
                errors=[{"field": "input_file", "message": str(exc.strerror), "value": str(input_file)}],
            ) from exc
    if text is not None:
        data = parse_json(text, field="input", source=source)
        if not isinstance(data, dict):
            raise InputValidationError(
                f"{source} must be a JSON object, got {type(data).__name__}",
                errors=[{"field": "input", "message": "must be an object"}],
            )
    if topic is not None:
        data["topic"] = topic
    if require_approval:
        data["require_approval"] = True
    check_json(data, field="input")  # --topic too: argv can hold a lone surrogate (undecodable bytes)
    return dict(data)


def _final_text(result: WorkflowResult) -> str | None:
    if result.output is not None:  # a code-first workflow's own return value
        return result.output if isinstance(result.output, str) else json.dumps(result.output, indent=2)
    for key in ("final", "revise", "generate"):
        value = result.outputs.get(key)
        if isinstance(value, dict):
            for field in ("text", "revised_draft", "draft"):
                if isinstance(value.get(field), str):
                    return str(value[field])
    return None


def result_document(result: WorkflowResult) -> dict[str, Any]:
    """The JSON document printed by ``--format json``."""
    data = result.model_dump(mode="json")
    data["final_text"] = _final_text(result)
    return data


def print_result(result: WorkflowResult, fmt: str) -> None:
    """Print a workflow result in the chosen format."""
    if fmt == "json":
        typer.echo(json.dumps(result_document(result), indent=2))
        return
    if fmt == "quiet":
        typer.echo(result.workflow_id)
        return
    console = Console()
    text = _final_text(result)
    if text and result.state is WorkflowState.COMPLETED:
        console.rule("result")
        console.print(text, highlight=False, markup=False)
        console.rule()
    summary = Table(show_header=False, box=None)
    summary.add_row("workflow", result.workflow_id)
    summary.add_row("definition", result.definition_id)
    summary.add_row("state", result.state.value)
    summary.add_row("steps", ", ".join(s.step_id for s in result.steps) or "-")
    summary.add_row("revisions", str(result.revisions))
    summary.add_row(
        "tokens",
        f"{result.tokens.total} (in {result.tokens.input}, out {result.tokens.output})",
    )
    summary.add_row("cost", f"${result.cost_usd}")
    if result.duration_ms is not None:
        summary.add_row("time", f"{result.duration_ms / 1000:.2f}s")
    if result.error:
        summary.add_row("error", f"{result.error.get('type')}: {result.error.get('message')}")
    console.print(summary)


def exit_for(result: WorkflowResult) -> None:
    """Exit with the code of the workflow's final state."""
    if result.state is WorkflowState.FAILED:
        raise typer.Exit(EXIT_FAILED)
    if result.state is WorkflowState.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)


def _interrupted(workflow_id: str | None) -> None:
    if workflow_id:
        typer.echo(
            f"interrupted: workflow {workflow_id} is left resumable; continue it with: ecl resume {workflow_id}",
            err=True,
        )
    sys.exit(EXIT_INTERRUPTED)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``resume``."""

    @app.command("run")
    def run(
        definition: Annotated[str, typer.Argument(help="Definition id, e.g. critique-revise.")],
        input_json: Annotated[str | None, typer.Option("--input", help="Input as a JSON object.")] = None,
        input_file: Annotated[
            Path | None, typer.Option("--input-file", help="Read the input JSON from a file.")
        ] = None,
        topic: Annotated[str | None, typer.Option(help="Shortcut for --input '{\"topic\": ...}'.")] = None,
        require_approval: Annotated[
            bool, typer.Option("--require-approval", help="Wait for `ecl signal ID approve`.")
        ] = False,
        budget_usd: Annotated[
            str | None, typer.Option("--budget-usd", help="Most the run may spend on LLM calls (USD).")
        ] = None,
        budget_tokens: Annotated[
            str | None, typer.Option("--budget-tokens", help="Most LLM tokens the run may use.")
        ] = None,
        workflow_id: Annotated[
            str | None, typer.Option("--id", help="Workflow id (idempotent: reuse to re-attach).")
        ] = None,
        engine: EngineOpt = None,
        llm: LlmOpt = None,
        modules: ModulesOpt = None,
        detach: Annotated[bool, typer.Option("--detach", help="Submit and return; a worker runs it.")] = False,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Run a workflow in the foreground, showing progress, and print its result."""
        check_format(fmt)
        check_llm_choice(llm)
        data = parse_input(input_json, input_file, topic, require_approval)
        if budget_usd is not None:
            data["budget_usd"] = str(parse_amount(budget_usd, field="--budget-usd"))
        if budget_tokens is not None:
            data["budget_tokens"] = budget_tokens
        tokens = parse_budget(data)[1]
        if tokens is not None:
            data["budget_tokens"] = tokens
        settings = settings_from(config, engine=engine, modules=modules)
        from ecl.analyzer.bundle import ANALYZER_ID, prepare_submission  # here: not every command's start

        if definition == ANALYZER_ID:
            data = prepare_submission(data, settings.analyzer, from_api=False)  # analyzer.* settings apply
        progress = Progress(quiet=fmt != "table")
        submitted: list[str] = []

        async def go() -> WorkflowResult | None:
            async with open_command_engine(settings, llm=llm, progress=progress) as eng:
                if detach:
                    submitted.append(await eng.submit(definition, data, workflow_id, start=False))
                    return None
                # A new workflow, or an existing one (same --id): finish it here or wait for it.
                return await eng.run(definition, data, workflow_id, on_submitted=submitted.append, on_wait=_say_waiting)

        try:
            result = asyncio.run(go())
        except KeyboardInterrupt:
            _interrupted(submitted[0] if submitted else None)
            return
        if result is None:
            typer.echo(submitted[0] if fmt == "quiet" else f"submitted {submitted[0]}")
            return
        print_result(result, fmt)
        exit_for(result)

    @app.command("resume")
    def resume(
        workflow_id: Annotated[str, typer.Argument(help="The workflow to continue.")],
        llm: LlmOpt = None,
        modules: ModulesOpt = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Continue an interrupted workflow in the foreground (completed steps are not re-run)."""
        check_format(fmt)
        check_llm_choice(llm)
        settings = settings_from(config, modules=modules)
        progress = Progress(quiet=fmt != "table")

        async def go() -> WorkflowResult:
            async with open_command_engine(settings, llm=llm, progress=progress) as eng:
                return await eng.resume(workflow_id, on_wait=_say_waiting)

        try:
            result = asyncio.run(go())
        except KeyboardInterrupt:
            _interrupted(workflow_id)
            return
        print_result(result, fmt)
        exit_for(result)


def _say_waiting(wait: OwnerWait) -> None:
    where = f"{wait.host} pid {wait.pid}" if wait.host else "an unknown process"
    until = wait.expires_at.isoformat(timespec="seconds") if wait.expires_at else "unknown"
    typer.echo(
        f"workflow {wait.workflow_id} is owned by a live worker ({where}); "
        f"waiting for its lease to expire (at {until})",
        err=True,
    )
