"""``ecl server start``: the HTTP API plus, on the embedded engine, the worker."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

from ecl.cli.options import ConfigOpt, EngineOpt, LlmOpt, ModulesOpt
from ecl.cli.runtime import check_llm_choice, ensure_database, settings_from, tune_gc
from ecl.core.errors import ConfigError, InputValidationError
from ecl.store.database import is_memory

__all__ = ["openapi_document", "register"]


def _check_port(port: int | None) -> None:
    if port is not None and not 1 <= port <= 65535:
        raise InputValidationError(
            f"--port {port}: expected a port from 1 to 65535",
            errors=[{"field": "port", "message": "expected 1-65535", "value": port}],
        )


def _bind(host: str, port: int, key: str) -> socket.socket:
    """The listening socket, bound before anything starts, so that a port in use is one
    clear error instead of a failure after start-up (what ``uvicorn`` does when it binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        label = f"--port {port}" if key == "--port" else f"{key} = {port}"
        raise ConfigError(
            f"{label}: cannot listen on {host}:{port}: {reason} "
            "(choose another port with --port or api.port, or stop what listens there)",
            key=key,
            value=port,
            source="--port" if key == "--port" else "",
        ) from None
    sock.set_inheritable(True)
    return sock


class _StartupGuard:
    """An ASGI wrapper that keeps the exception a failed start-up raised (unreachable or
    unmigrated database, ...) instead of letting ``uvicorn`` log its traceback; the command
    raises it again, so the CLI's error boundary prints it as one line."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet_send(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                message = {**message, "message": ""}  # the traceback text uvicorn would log
            await send(message)

        try:
            await self.app(scope, receive, quiet_send)
        except Exception as exc:
            self.error = exc
            raise


def _run(api: Any, sock: socket.socket) -> None:
    """Serve ``api`` on ``sock`` until SIGTERM or Ctrl-C; a failed start-up raises its error."""
    import uvicorn  # here: only `ecl server start` serves; other commands start without it

    guard = _StartupGuard(api)
    # loop and http "auto": uvloop and httptools (dependencies of ECL) when importable; about
    # a third less CPU a request than asyncio's loop and h11 (bench/api.py serves its
    # baseline with the same defaults).
    config = uvicorn.Config(
        guard, lifespan="on", log_level="warning", timeout_graceful_shutdown=10, loop="auto", http="auto"
    )
    server = uvicorn.Server(config)
    # After a failed start-up uvicorn only logs that it is exiting; the error itself follows.
    logging.getLogger("uvicorn.error").addFilter(lambda _record: guard.error is None)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        if guard.error is None:
            raise
    if guard.error is not None:
        raise guard.error


def _serve(make_api: Callable[[], Any], host: str, port: int, key: str, workers: int = 1) -> None:
    """Serve on ``host:port`` from ``workers`` processes sharing the one listening socket (the
    kernel hands each connection to one of them). Each process builds its own app after the
    fork, so each has its own engine: on the embedded engine each runs the workflows
    submitted to it, under its own lease, and recovers those of a process that died."""
    sock = _bind(host, port, key)
    children: list[int] = []
    try:
        for _ in range(workers - 1):
            pid = os.fork()
            if pid == 0:
                _child(make_api, sock)  # never returns
            children.append(pid)
        # uvicorn handles SIGTERM itself, then raises it again under the handler it found:
        # this one, which passes it on to the other processes once this one has stopped.
        signal.signal(signal.SIGTERM, lambda _sig, _frame: _signal_all(children, signal.SIGTERM))
        _run(make_api(), sock)
    finally:
        sock.close()
        _stop_all(children)


def _child(make_api: Callable[[], Any], sock: socket.socket) -> NoReturn:
    """A worker process after the fork: serve, then exit (never back into the parent's code)."""
    code = 0
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        _run(make_api(), sock)
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:
        from ecl.cli.app import describe_error
        from ecl.core.redaction import redact_text

        message, hint, code = describe_error(exc)
        text = f"error: worker process {os.getpid()}: {message}" + (f"\nhint: {hint}" if hint else "")
        print(redact_text(text), file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop_all(pids: list[int], timeout: float = 30.0) -> None:
    """Stop the worker processes (SIGTERM: each leaves its workflows resumable) and reap them;
    one still running after ``timeout`` seconds is killed."""
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            with contextlib.suppress(ChildProcessError):
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if done == 0:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            break


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
        engine: EngineOpt = None,
        api_only: Annotated[
            bool, typer.Option("--api", help="With --engine restate: serve the HTTP API as a client of Restate.")
        ] = False,
        workers: Annotated[
            int,
            typer.Option(
                min=1,
                max=64,
                help="Processes serving the API on the one port; on the embedded engine each also "
                "runs the workflows submitted to it (they share the database safely: leases).",
            ),
        ] = 1,
        config: ConfigOpt = None,
    ) -> None:
        """Serve the API and run workflows (Ctrl-C or SIGTERM: in-flight work stays resumable).

        With ``--engine restate`` it serves the ECL endpoint for a Restate server instead
        (HTTP/2, registered with the admin API at start-up); add ``--api`` to serve the HTTP
        API there, submitting to Restate and reading the records its endpoint writes.
        """
        from ecl.api.app import create_app
        from ecl.engines.factory import runs_in_process

        check_llm_choice(llm)
        _check_port(port)
        settings = settings_from(config, engine=engine, service=True, modules=modules)
        ensure_database(settings)
        if not runs_in_process(settings) and not api_only:  # serve the worker: Restate's endpoint
            if workers > 1:
                raise InputValidationError(
                    f"--workers {workers}: serves the HTTP API from several processes; "
                    "with --engine restate that is with --api",
                    errors=[{"field": "workers", "message": "for the HTTP API", "value": workers}],
                )
            import asyncio

            from ecl.engines.restate.endpoint import serve_endpoint

            # hypercorn binds after start-up work: probe the port first, for the same one-line error
            endpoint_port = port if port is not None else settings.restate.endpoint_port
            key = "--port" if port is not None else "restate.endpoint_port"
            _bind(host or settings.restate.endpoint_host, endpoint_port, key).close()
            asyncio.run(serve_endpoint(settings, host=host, port=port, llm=llm))
            return
        if workers > 1 and is_memory(settings.database.url):
            raise InputValidationError(
                f"--workers {workers}: an in-memory SQLite database is one process's own; "
                "use a SQLite file or PostgreSQL (database.url)",
                errors=[{"field": "workers", "message": "needs a shared database", "value": workers}],
            )
        tune_gc(settings.embedded.gc_threshold)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
        # handler it found; a no-op handler makes that a clean exit (status 0).
        signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
        _serve(
            lambda: create_app(settings, llm=llm),
            host or settings.api.host,
            port if port is not None else settings.api.port,
            "--port" if port is not None else "api.port",
            workers,
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
