"""``ecl dev``: a local Restate server plus the ECL endpoint, registered; Ctrl-C stops both.

The server is the one ``make setup`` installed (``.tools/restate``), its data in
``restate.data_dir`` (``.restate/`` in the current folder) so workflows survive a restart of
``ecl dev``. When a Restate server already answers at ``restate.admin_url`` (say, from
``docker compose up restate``), it is used as it is and only the endpoint is served.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from ecl.cli.options import ConfigOpt, LlmOpt, ModulesOpt
from ecl.cli.runtime import check_llm_choice, ensure_database, settings_from
from ecl.core.errors import ConfigError

__all__ = ["register"]


def _port(url: str, key: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ConfigError(f"{key} must name a host and a port, got {url!r}", key=key, value=url)
    return parts.hostname, parts.port


def register(app: typer.Typer) -> None:
    """Add ``dev``."""

    @app.command("dev")
    def dev(
        llm: LlmOpt = None,
        modules: ModulesOpt = None,
        data_dir: Annotated[Path | None, typer.Option(help="Restate data (default: restate.data_dir).")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Start Restate (data in .restate/), serve and register the ECL endpoint, until Ctrl-C."""
        # Imported here: Restate's SDK and its server stack would add to every command's start.
        from ecl.engines.restate.endpoint import serve_endpoint
        from ecl.engines.restate.server import RestateServer, find_server_binary, free_port

        check_llm_choice(llm)
        settings = settings_from(config, engine="restate", service=True, modules=modules)
        ensure_database(settings)
        host, ingress = _port(settings.restate.ingress_url, "restate.ingress_url")
        admin_host, admin = _port(settings.restate.admin_url, "restate.admin_url")
        server = RestateServer(
            data_dir=data_dir or Path(settings.restate.data_dir),
            binary=None,
            ingress_port=ingress,
            admin_port=admin,
            node_port=free_port(),
            host=host,
        )
        external = admin_host == host and server.healthy()
        if external:
            typer.echo(f"restate: using the server already running at {settings.restate.admin_url}", err=True)
        else:
            server.binary = find_server_binary(settings.restate.server_bin)
            server.start()
            typer.echo(
                f"restate: {server.binary.name} {server.data_dir.resolve()} "
                f"(ingress {server.ingress_url}, admin {server.admin_url}, log {server.log_path})",
                err=True,
            )
        typer.echo(
            f"ecl: endpoint on http://{settings.restate.endpoint_host}:{settings.restate.endpoint_port} "
            f"(database {settings.database.url}). Ctrl-C stops " + ("it." if external else "both."),
            err=True,
        )
        try:
            asyncio.run(serve_endpoint(settings, llm=llm))
        except KeyboardInterrupt:
            pass
        finally:
            if not external:
                server.stop()
            typer.echo("stopped", err=True)
