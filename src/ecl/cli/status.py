"""Inspecting and steering workflows: status, list, logs, cancel, signal."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.options import ConfigOpt, EngineOpt, FormatOpt
from ecl.cli.output import check_format, echo_json, render_rows, short_time
from ecl.cli.runtime import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    open_command_engine,
    repositories,
    require_database,
    settings_from,
)
from ecl.core.errors import InputValidationError
from ecl.core.json_values import check_json
from ecl.core.rules import APPROVAL_PROMISE
from ecl.core.state import WorkflowState, parse_state
from ecl.core.waiting import describe_wait
from ecl.llm.budget import parse_top_up
from ecl.store.trace import RunRecords, read_run
from ecl.workflows import BUDGET_PROMISE

__all__ = ["register"]


async def _snapshot(settings: Any, workflow_id: str, step: str | None = None) -> dict[str, Any]:
    repos = repositories(settings)
    try:
        run = await read_run(repos.workflows, repos.steps, repos.llm_calls, workflow_id, step_id=step)
        state = await repos.workflows.kv(workflow_id)
        artifacts = await repos.artifacts.list_for(workflow_id)
    finally:
        await repos.close()
    return {
        "workflow": run.workflow.model_dump(mode="json"),
        "state": state,
        "steps": [
            {**s.model_dump(mode="json"), "cost_usd": str(run.step_costs.get(s.id, Decimal(0)))} for s in run.steps
        ],
        "llm_calls": [c.model_dump(mode="json") for c in run.calls],
        "llm_totals": run.totals.model_dump(mode="json"),
        "artifacts": [a.model_dump(mode="json") for a in artifacts],
        "_records": (run.workflow, run.steps, run.totals),
        "_run": run,
    }


def _print_status(snap: dict[str, Any], console: Console) -> None:
    workflow, steps, totals = snap["_records"]
    head = Table(show_header=False, box=None)
    head.add_row("workflow", workflow.id)
    head.add_row("definition", workflow.definition_id)
    head.add_row("state", workflow.state.value)
    head.add_row("revisions", str(snap["state"].get("revision_count", workflow.revision_count)))
    head.add_row("created", short_time(workflow.created_at))
    head.add_row("updated", short_time(workflow.updated_at))
    head.add_row("llm calls", f"{totals.calls} ({totals.errors} failed), {totals.tokens.total} tokens")
    head.add_row("cost", f"${totals.cost_usd}")
    if workflow.waiting:
        head.add_row("waiting", describe_wait(workflow.waiting))
    if workflow.error:
        head.add_row("error", f"{workflow.error.get('type')}: {workflow.error.get('message')}")
    console.print(head)
    table = Table(title="steps")
    for column in ("step", "iteration", "attempt", "state", "tokens", "cost", "started", "duration"):
        table.add_column(column)
    step_costs = {s["id"]: s["cost_usd"] for s in snap["steps"]}
    for s in steps:
        duration = f"{(s.completed_at - s.started_at).total_seconds():.2f}s" if s.completed_at else "running"
        table.add_row(
            s.step_id,
            str(s.iteration),
            str(s.attempt),
            s.state,
            str(s.tokens_used or 0),
            f"${step_costs.get(s.id, '0')}",
            short_time(s.started_at),
            duration,
        )
    console.print(table)


def _exit_for_state(state: WorkflowState) -> None:
    if state is WorkflowState.FAILED:
        raise typer.Exit(EXIT_FAILED)
    if state is WorkflowState.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)


def register(app: typer.Typer) -> None:
    """Add status, list, logs, cancel and signal."""

    @app.command("status")
    def status(
        workflow_id: Annotated[str, typer.Argument(help="The workflow.")],
        watch: Annotated[bool, typer.Option("--watch", help="Refresh until the workflow ends.")] = False,
        interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Show a workflow's state, steps, revisions and tokens (exit 10 failed, 11 cancelled)."""
        check_format(fmt)
        settings = settings_from(config)
        require_database(settings)
        console = Console()
        last_seen = -1
        while True:
            snap = asyncio.run(_snapshot(settings, workflow_id))
            workflow = snap["_records"][0]
            if not watch or workflow.state.is_terminal or fmt != "table":
                if watch and not workflow.state.is_terminal:
                    time.sleep(interval)
                    continue
                if fmt == "json":
                    echo_json({k: v for k, v in snap.items() if not k.startswith("_")})
                elif fmt == "quiet":
                    typer.echo(workflow.state.value)
                else:
                    _print_status(snap, console)
                _exit_for_state(workflow.state)
                return
            steps = snap["_records"][1]
            if len(steps) != last_seen:
                last_seen = len(steps)
                console.rule(f"{workflow.state.value} · {len(steps)} step executions")
                _print_status(snap, console)
            time.sleep(interval)

    @app.command("list")
    def list_(
        state: Annotated[str | None, typer.Option(help="Only workflows in this state.")] = None,
        definition: Annotated[str | None, typer.Option(help="Only this definition.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many (1-100).")] = 20,
        cursor: Annotated[str | None, typer.Option(help="Continue after a previous page.")] = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """List workflows, newest first."""
        check_format(fmt)
        wanted = parse_state(state) if state is not None else None
        settings = settings_from(config)
        require_database(settings)

        async def go() -> Any:
            repos = repositories(settings)
            try:
                found = await repos.workflows.list(state=wanted, definition_id=definition, limit=limit, cursor=cursor)
                return found, await repos.llm_calls.costs(w.id for w in found.items)
            finally:
                await repos.close()

        page, costs = asyncio.run(go())
        rows = [
            {
                "id": w.id,
                "definition": w.definition_id,
                "state": w.state.value,
                "revisions": w.revision_count,
                "cost_usd": costs[w.id],
                "created": w.created_at,
            }
            for w in page.items
        ]
        render_rows(
            rows,
            ["id", "definition", "state", "revisions", "cost_usd", "created"],
            fmt,
            json_doc={
                "items": [{**w.model_dump(mode="json"), "cost_usd": str(costs[w.id])} for w in page.items],
                "next_cursor": page.next_cursor,
            },
        )
        if fmt == "table" and page.next_cursor:
            typer.echo(f"more: ecl list --cursor {page.next_cursor}", err=True)

    @app.command("logs")
    def logs(
        workflow_id: Annotated[str, typer.Argument(help="The workflow.")],
        step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
        follow: Annotated[bool, typer.Option("--follow", help="Keep printing until it ends.")] = False,
        interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 1.0,
        content: Annotated[
            bool,
            typer.Option(
                "--content",
                help="Also each LLM call's prompt and reply (stored only with observability.capture_content).",
            ),
        ] = False,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """The recorded trace of a workflow, in order: step attempts, LLM calls, critique
        verdicts, revision rounds, signals (approve/revise, budget), state changes, waits (begun,
        and over with how long they lasted) and the end state.

        ``--format json`` prints one JSON list; with ``--follow`` one JSON object per line.
        ``--content`` adds each LLM call's ``prompt`` and ``reply`` when they were stored.
        """
        check_format(fmt)
        settings = settings_from(config)
        require_database(settings)
        printed: set[str] = set()
        while True:
            snap = asyncio.run(_snapshot(settings, workflow_id, step))
            fresh = [e for e in _events(snap, step, content) if e["id"] not in printed]
            printed.update(e["id"] for e in fresh)
            workflow = snap["_records"][0]
            if fmt == "json" and not follow:
                echo_json(fresh)  # one document
                return
            for event in fresh:
                if fmt == "json":
                    typer.echo(json.dumps(event, default=str))  # JSON Lines while following
                elif fmt == "quiet":
                    typer.echo(event["id"])
                else:
                    typer.echo(f"{event['time']}  {event['kind']:<14} {event['text']}")
                    for part in ("prompt", "reply"):
                        if event.get(part) is not None:
                            typer.echo(_indented(part, event[part]))
            if not follow or workflow.state.is_terminal:
                return
            time.sleep(interval)

    @app.command("cancel")
    def cancel(
        workflow_id: Annotated[str, typer.Argument(help="The workflow.")],
        engine: EngineOpt = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Cancel a workflow, whatever it is doing."""
        check_format(fmt)
        settings = settings_from(config, engine=engine)

        async def go() -> None:
            async with open_command_engine(settings) as eng:
                await eng.cancel(workflow_id)

        asyncio.run(go())
        done = {"workflow_id": workflow_id, "state": WorkflowState.CANCELLED.value}
        _say(fmt, workflow_id, f"cancelled {workflow_id}", done)

    @app.command("signal")
    def signal(
        workflow_id: Annotated[str, typer.Argument(help="The workflow.")],
        decision: Annotated[
            str, typer.Argument(help="approve, revise, budget (--add-usd/--add-tokens) or implementation (--path).")
        ],
        feedback: Annotated[str | None, typer.Option(help="What to change (with revise).")] = None,
        promise: Annotated[str, typer.Option(help="The durable promise to resolve.")] = APPROVAL_PROMISE,
        add_usd: Annotated[
            str | None, typer.Option("--add-usd", help="With budget: raise the budget by this many USD.")
        ] = None,
        add_tokens: Annotated[
            str | None, typer.Option("--add-tokens", help="With budget: raise the token budget by this many.")
        ] = None,
        path: Annotated[
            Path | None, typer.Option("--path", help="With implementation: the new code to assess.")
        ] = None,
        engine: EngineOpt = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Answer a workflow waiting for approval (approve, or revise with feedback), or top up
        the budget of one waiting for budget: ``ecl signal ID budget --add-usd 2``."""
        check_format(fmt)
        if decision not in ("approve", "revise", "budget", "implementation"):
            raise InputValidationError(
                f"unknown decision {decision!r}; expected approve, revise or budget (or implementation --path DIR)",
                errors=[{"field": "decision", "message": "expected approve, revise or budget", "value": decision}],
            )
        payload: dict[str, Any] = {"decision": decision, "feedback": feedback}
        if decision == "budget":
            top_up: dict[str, Any] = {}
            if add_usd is not None:
                top_up["add_usd"] = add_usd
            if add_tokens is not None:
                top_up["add_tokens"] = add_tokens
            if not top_up:
                raise InputValidationError(
                    "signal budget needs --add-usd N and/or --add-tokens N",
                    errors=[{"field": "add_usd", "message": "required with budget"}],
                )
            usd, tokens = parse_top_up(top_up)
            payload = {"add_usd": str(usd), "add_tokens": tokens}
            promise = BUDGET_PROMISE
        settings = settings_from(config, engine=engine)
        if decision == "implementation":
            # The codebase-migration analyzer waits on this promise for the code to assess.
            if path is None or not path.exists():
                raise InputValidationError(
                    f"implementation needs --path to an existing folder or archive, got {path}",
                    errors=[{"field": "path", "message": "missing or does not exist", "value": str(path)}],
                )
            promise, payload = "implementation", {"path": str(path.absolute())}
        check_json(payload)  # argv can hold a lone surrogate (undecodable bytes)

        async def go() -> None:
            async with open_command_engine(settings) as eng:
                await eng.signal(workflow_id, promise, payload)  # an ended workflow: ConflictError

        asyncio.run(go())
        _say(fmt, workflow_id, f"signalled {workflow_id}: {decision}", {"workflow_id": workflow_id, **payload})


def _say(fmt: str, workflow_id: str, text: str, doc: dict[str, Any]) -> None:
    if fmt == "json":
        echo_json(doc)
    elif fmt == "quiet":
        typer.echo(workflow_id)
    else:
        typer.echo(text)


def _events(snap: dict[str, Any], step: str | None, content: bool = False) -> list[dict[str, Any]]:
    run: RunRecords = snap["_run"]
    return run.trace(step=step, content=content)


def _indented(label: str, text: str) -> str:
    """A call's prompt or reply under its line: labelled, each line indented."""
    body = "\n".join(f"      {line}" for line in text.splitlines() or [""])
    return f"    {label}:\n{body}"
