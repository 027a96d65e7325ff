"""``ecl config show``: the effective configuration, secrets redacted."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.cli.options import ConfigOpt, FormatOpt
from ecl.cli.output import check_format, echo_json
from ecl.config import load_settings, sources_of

__all__ = ["register"]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def register(app: typer.Typer) -> None:
    """Add the ``config`` group."""
    group = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

    @group.command("show")
    def show(
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Print every setting with its value and where it came from."""
        check_format(fmt)
        settings = load_settings(config)
        data = settings.redacted_dict()
        sources = sources_of(settings)
        if fmt == "json":
            echo_json(data)
            return
        flat = _flatten(data)
        if fmt == "quiet":
            for key in flat:
                typer.echo(key)
            return
        table = Table(title="ECL configuration")
        for column in ("key", "value", "source"):
            table.add_column(column)
        for key, value in flat.items():
            table.add_row(key, json.dumps(value) if value is not None else "-", sources.get(key, "default"))
        Console().print(table)

    app.add_typer(group, name="config")
