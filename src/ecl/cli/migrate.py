"""``ecl migrate``: create or upgrade the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from ecl.cli.options import ConfigOpt, FormatOpt
from ecl.cli.output import check_format, echo_json
from ecl.cli.runtime import settings_from
from ecl.store.database import create_sqlite_folder, current_revision, head_revision, upgrade

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``migrate``."""

    @app.command("migrate")
    def migrate(
        target: Annotated[str, typer.Option(help="Revision to migrate to.")] = "head",
        database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides database.url.")] = None,
        fmt: FormatOpt = "table",
        config: ConfigOpt = None,
    ) -> None:
        """Apply the database migrations (safe to run again: it changes nothing when current)."""
        check_format(fmt)
        url = database_url or settings_from(config).database.url
        create_sqlite_folder(url)
        before = current_revision(url)
        applied = upgrade(url, target)
        after = current_revision(url)
        if fmt == "json":
            echo_json({"before": before, "after": after, "applied": applied, "head": head_revision()})
        elif fmt == "quiet":
            typer.echo(after or "")
        elif applied:
            typer.echo(f"applied {', '.join(applied)} (now at {after})")
        else:
            typer.echo(f"already at {after}; nothing to do")
