"""``ecl server start``: the HTTP API plus, on the embedded engine, the worker."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
import yaml

from ecl.cli.options import LlmOpt, ModulesOpt
from ecl.cli.runtime import check_llm_choice, ensure_database, settings_from, tune_gc

__all__ = ["openapi_document", "register"]


def openapi_document() -> str:
    """The OpenAPI document of the API as YAML (what docs/api/openapi.yaml holds)."""
    from ecl.api.app import create_app
    from ecl.config import load_settings

    settings = load_settings(environ={"ECL_DATABASE_URL": "sqlite://"})
    app = create_app(settings, worker=False)
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True)


def register(app: typer.Typer) -> None:
    """Add the ``server`` group."""
    group = typer.Typer(help="The HTTP API server.", no_args_is_help=True)

    @group.command("start")
    def start(
        port: Annotated[int | None, typer.Option(help="Port (default: api.port, 3000).")] = None,
        host: Annotated[str | None, typer.Option(help="Interface (default: api.host).")] = None,
        llm: LlmOpt = None,
        modules: ModulesOpt = None,
        engine: Annotated[str | None, typer.Option(help="embedded (default) or restate.")] = None,
        api_only: Annotated[
            bool, typer.Option("--api", help="With --engine restate: serve the HTTP API as a client of Restate.")
        ] = False,
        config: Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")] = None,
    ) -> None:
        """Serve the API and run workflows (Ctrl-C or SIGTERM: in-flight work stays resumable).

        With ``--engine restate`` it serves the ECL endpoint for a Restate server instead
        (HTTP/2, registered with the admin API at start-up); add ``--api`` to serve the HTTP
        API there, submitting to Restate and reading the records its endpoint writes.
        """
        from ecl.api.app import create_app
        from ecl.engines.factory import runs_in_process

        check_llm_choice(llm)
        settings = settings_from(config, engine=engine, service=True, modules=modules)
        ensure_database(settings)
        if not runs_in_process(settings) and not api_only:  # serve the worker: Restate's endpoint
            import asyncio

            from ecl.engines.restate.endpoint import serve_endpoint

            asyncio.run(serve_endpoint(settings, host=host, port=port, llm=llm))
            return
        tune_gc(settings.embedded.gc_threshold)
        api = create_app(settings, llm=llm)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
        # handler it found; a no-op handler makes that a clean exit (status 0).
        signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
        uvicorn.run(
            api,
            host=host or settings.api.host,
            port=port if port is not None else settings.api.port,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )

    @group.command("openapi")
    def openapi(
        output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    ) -> None:
        """Print (or write) the OpenAPI document of the API."""
        text = openapi_document()
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {output}")

    app.add_typer(group, name="server")
