"""The ``ecl`` command line: the Typer app and the error boundary.

Each command group lives in its own module under ``ecl.cli`` and exposes
``register(app: typer.Typer) -> None``; :func:`build_app` calls them all.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import SQLAlchemyError

from ecl.core.errors import (
    ConfigError,
    ConflictError,
    DatabaseError,
    EclError,
    EngineError,
    InputValidationError,
    NotFoundError,
    UserError,
)

__all__ = ["EXIT_CODES", "build_app", "main"]

EXIT_CODES: dict[type[EclError], int] = {
    NotFoundError: 3,
    InputValidationError: 4,
    ConfigError: 5,
    ConflictError: 6,
    DatabaseError: 7,
    EngineError: 8,
    UserError: 2,
    EclError: 1,
}
"""Exit code per error family (most specific first); 0 is success, 130 is Ctrl-C."""


def exit_code_for(error: EclError) -> int:
    """The exit code of the most specific family ``error`` belongs to."""
    for cls, code in EXIT_CODES.items():
        if isinstance(error, cls):
            return code
    return 1


def build_app() -> typer.Typer:
    """The full ``ecl`` app with every command group registered."""
    app = typer.Typer(
        name="ecl",
        help="ECL: durable AI workflows.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
    )
    # Command modules are imported here so that `ecl --help` lists them all.
    from ecl.cli import commands

    for register in commands.REGISTRARS:
        register(app)
    return app


def main() -> None:
    """Console-script entry point: runs the app, turning ECL errors into one line + exit code."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    app = build_app()
    try:
        # Typer handles usage errors itself (exit 2); ECL errors come through to here.
        app()
    except EclError as exc:
        if debug:
            raise
        hint = getattr(exc, "hint", None)
        typer.echo(f"error: {exc}" + (f"\nhint: {hint}" if hint else ""), err=True)
        sys.exit(exit_code_for(exc))
    except (SQLAlchemyError, ConnectionError) as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(f"error: the database is unreachable or failed: {first}", err=True)
        sys.exit(EXIT_CODES[DatabaseError])
    except KeyboardInterrupt:
        sys.exit(130)
