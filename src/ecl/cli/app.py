"""The ``ecl`` command line: the Typer app and the error boundary.

Each command group lives in its own module under ``ecl.cli`` and exposes
``register(app: typer.Typer) -> None``; :func:`build_app` calls them all.

The error boundary is :func:`main`: whatever a command raises ends as one line on stderr
(``error: ...``, maybe a ``hint: ...`` line) and an exit code of :data:`EXIT_CODES` — ECL's
own errors by family, anything else translated by :func:`describe_error` — with every URL
password hidden. Only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated

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
from ecl.core.redaction import redact_text

__all__ = ["EXIT_CODES", "build_app", "describe_error", "main"]

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


def describe_error(exc: BaseException) -> tuple[str, str | None, int]:
    """``(message, hint, exit code)`` for an exception that reached the top of a command."""
    # A task group wraps what one task raised; report that.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, EclError):
        hint = getattr(exc, "hint", None)
        return str(exc), hint if isinstance(hint, str) else None, exit_code_for(exc)
    if isinstance(exc, SQLAlchemyError | ConnectionError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the database is unreachable or failed: {first}", None, EXIT_CODES[DatabaseError]
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}", "run again with --debug for the traceback", 1
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply", None, EXIT_CODES[InputValidationError]
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"unexpected {type(exc).__name__}" + (f": {first}" if first else ""),
        "run again with --debug for the traceback, and please report it",
        1,
    )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ecl {metadata.version('ecl-workflows')}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The full ``ecl`` app with every command group registered."""
    app = typer.Typer(
        name="ecl",
        help="ECL: durable AI workflows.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
    )

    @app.callback()
    def _root(
        _version_flag: Annotated[
            bool,
            typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
        ] = False,
    ) -> None:
        """ECL: durable AI workflows."""

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
        # Typer handles usage errors itself (exit 2); everything else comes through to here.
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        message, hint, code = describe_error(exc)
        text = f"error: {message}" + (f"\nhint: {hint}" if hint else "")
        typer.echo(redact_text(text), err=True)
        sys.exit(code)
