"""``ecl definitions``: list, show and validate workflow definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.output import check_format, echo_json, render_rows
from ecl.cli.runtime import settings_from
from ecl.workflows import DefinitionRegistry, RevisionLoop

__all__ = ["register"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or quiet.")]


def _registry(config: Path | None) -> DefinitionRegistry:
    settings = settings_from(config)
    folder = Path(settings.definitions_path) if settings.definitions_path else None
    return DefinitionRegistry.with_builtins(folder=folder)


def register(app: typer.Typer) -> None:
    """Add the ``definitions`` group."""
    group = typer.Typer(help="Workflow definitions.", no_args_is_help=True)

    @group.command("list")
    def list_(fmt: FormatOpt = "table", config: ConfigOpt = None) -> None:
        """The available definitions."""
        check_format(fmt)
        defs = _registry(config).list()
        rows = [{"id": d.id, "name": d.name, "steps": ", ".join(s.step_id for s in d.steps)} for d in defs]
        render_rows(
            rows,
            ["id", "name", "steps"],
            fmt,
            json_doc=[d.model_dump(mode="json", by_alias=True) for d in defs],
        )

    @group.command("show")
    def show(
        definition_id: Annotated[str, typer.Argument(help="Definition id.")],
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """One definition: steps, dependencies, inputs, transitions."""
        check_format(fmt)
        defn = _registry(config).get(definition_id)
        if fmt == "json":
            echo_json(defn.model_dump(mode="json", by_alias=True))
            return
        if fmt == "quiet":
            typer.echo(defn.id)
            return
        console = Console()
        console.print(f"[bold]{defn.id}[/bold] — {defn.name}\n{defn.description}", highlight=False)
        table = Table(title="steps")
        for column in ("step", "implementation", "depends on", "input"):
            table.add_column(column)
        for step in defn.steps:
            table.add_row(
                step.step_id,
                step.implementation,
                ", ".join(step.depends_on) or "-",
                ", ".join(f"{k}={v}" for k, v in step.input.items()),
                end_section=False,
            )
        console.print(table)
        for t in defn.transitions:
            if isinstance(t, RevisionLoop):
                console.print(f"revision loop: {t.validator} ⇄ {t.reviser}, at most {t.max_iterations} revisions")
            else:
                console.print(f"{t.kind}: {t.from_} → {t.to}", highlight=False)

    @group.command("validate")
    def validate(
        path: Annotated[Path, typer.Argument(help="A .yaml, .yml or .toml definition file.")],
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Check a definition file; errors name the offending step."""
        check_format(fmt)
        defn = _registry(config).validate_file(path)
        if fmt == "json":
            echo_json({"valid": True, "id": defn.id, "steps": [s.step_id for s in defn.steps]})
        elif fmt == "quiet":
            typer.echo(defn.id)
        else:
            typer.echo(f"{path}: valid definition {defn.id!r} with {len(defn.steps)} steps")

    app.add_typer(group, name="definitions")
