"""``ecl definitions``: list, show and validate workflow definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.options import ConfigOpt, FormatOpt, ModulesOpt
from ecl.cli.output import check_format, echo_json, render_rows
from ecl.cli.runtime import settings_from
from ecl.engines.factory import build_catalog
from ecl.workflows import CodeWorkflow, RevisionLoop, WorkflowCatalog, describe

__all__ = ["register"]


def _registry(config: Path | None, modules: list[str] | None) -> WorkflowCatalog:
    return build_catalog(settings_from(config, modules=modules))


def register(app: typer.Typer) -> None:
    """Add the ``definitions`` group."""
    group = typer.Typer(help="Workflow definitions.", no_args_is_help=True)

    @group.command("list")
    def list_(fmt: FormatOpt = "table", config: ConfigOpt = None, modules: ModulesOpt = None) -> None:
        """The available definitions."""
        check_format(fmt)
        docs = [describe(d) for d in _registry(config, modules).list()]
        rows = [
            {"id": d["id"], "name": d["name"], "kind": d["kind"], "steps": ", ".join(s["step_id"] for s in d["steps"])}
            for d in docs
        ]
        render_rows(rows, ["id", "name", "kind", "steps"], fmt, json_doc=docs)

    @group.command("show")
    def show(
        definition_id: Annotated[str, typer.Argument(help="Definition id.")],
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
        modules: ModulesOpt = None,
    ) -> None:
        """One definition: steps, dependencies, inputs, transitions."""
        check_format(fmt)
        catalog = _registry(config, modules)
        defn = catalog.get(definition_id)
        if fmt == "json":
            echo_json(describe(defn))
            return
        if fmt == "quiet":
            typer.echo(defn.id)
            return
        console = Console()
        console.print(f"[bold]{defn.id}[/bold] — {defn.name}\n{defn.description}", highlight=False)
        if isinstance(defn, CodeWorkflow):
            console.print(f"code-first workflow from {catalog.source_of(defn.id)}", highlight=False)
            for field, info in defn.input_model.model_fields.items():
                required = "required" if info.is_required() else f"default {info.default!r}"
                kind = getattr(info.annotation, "__name__", str(info.annotation))
                console.print(f"input {field}: {kind} ({required})", highlight=False)
            console.print(f"steps: {', '.join(defn.steps()) or '-'}", highlight=False)
            return
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
        modules: ModulesOpt = None,
    ) -> None:
        """Check a definition file; errors name the offending step."""
        check_format(fmt)
        defn = _registry(config, modules).validate_file(path)
        if fmt == "json":
            echo_json({"valid": True, "id": defn.id, "steps": [s.step_id for s in defn.steps]})
        elif fmt == "quiet":
            typer.echo(defn.id)
        else:
            typer.echo(f"{path}: valid definition {defn.id!r} with {len(defn.steps)} steps")

    app.add_typer(group, name="definitions")
