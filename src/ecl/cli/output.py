"""Printing data in the three output formats: table (Rich), json, quiet (ids only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ecl.core.errors import InputValidationError

__all__ = ["FORMATS", "check_format", "echo_json", "render_rows", "short_time"]

FORMATS = ("table", "json", "quiet")


def check_format(fmt: str) -> str:
    """Validate ``--format``."""
    if fmt not in FORMATS:
        raise InputValidationError(
            f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}",
            errors=[{"field": "format", "message": "unknown format", "value": fmt}],
        )
    return fmt


def echo_json(data: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def short_time(value: datetime | None) -> str:
    """``HH:MM:SS`` (UTC) or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def render_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    id_key: str = "id",
    title: str | None = None,
    json_doc: Any = None,
) -> None:
    """Print ``rows`` as a table, a JSON document (``json_doc`` or the rows) or ids."""
    if fmt == "json":
        echo_json(rows if json_doc is None else json_doc)
        return
    if fmt == "quiet":
        for row in rows:
            typer.echo(row[id_key])
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return short_time(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
