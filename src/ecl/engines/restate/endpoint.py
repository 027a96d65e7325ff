"""Serving the ECL endpoint over HTTP/2 (h2c, hypercorn) and registering it with Restate.

Restate talks HTTP/2 with prior knowledge to ``http://`` deployments: one connection, one
bidirectional stream per invocation attempt. (HTTP/1.1 request/response mode works too but
costs several times more per step, so it is not offered.)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import restate
import structlog
from hypercorn.asyncio import serve
from hypercorn.config import Config
from restate.server import install_shutdown_hook

from ecl.config import Settings
from ecl.core.errors import EngineError
from ecl.engines.factory import build_orchestrator
from ecl.engines.restate.service import Orchestrator, build_service
from ecl.store.database import check_schema, create_engine, create_sync_engine
from ecl.store.recorder import SqlRecorder

__all__ = [
    "EndpointThread",
    "build_asgi_app",
    "endpoint_app",
    "endpoint_recorder",
    "hypercorn_config",
    "register_deployment",
    "serve_endpoint",
    "serve_restate_endpoint",
]

_log = structlog.get_logger("ecl.restate")


def endpoint_app(orchestrator: Orchestrator, recorder: SqlRecorder) -> Any:
    """The Restate ASGI app hosting ``EclWorkflow`` for ``orchestrator``."""
    return restate.app(services=[build_service(orchestrator, recorder)])


def endpoint_recorder(url: str, *, pool_size: int = 5, sqlite_synchronous: str = "NORMAL") -> SqlRecorder:
    """The records of an endpoint: reads on the async engine, a run's writes on a writer
    thread with a sync driver (see :class:`~ecl.store.recorder.SqlRecorder`)."""
    return SqlRecorder(
        create_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous),
        writer=create_sync_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous),
    )


def _recorder(settings: Settings) -> SqlRecorder:
    return endpoint_recorder(
        settings.database.url,
        pool_size=settings.database.pool_size,
        sqlite_synchronous=settings.database.sqlite_synchronous,
    )


def build_asgi_app(settings: Settings, *, llm: str | None = None, recorder: SqlRecorder | None = None) -> Any:
    """The Restate ASGI app hosting ``EclWorkflow`` with the configured orchestrator."""
    runtime = build_orchestrator(settings, provider=llm)
    return endpoint_app(runtime.orchestrator, recorder or _recorder(settings))


def hypercorn_config(host: str, port: int) -> Config:
    """Hypercorn settings for a Restate endpoint (h2c, quiet, quick to stop)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.h2_max_concurrent_streams = 1000
    # Restate keeps its HTTP/2 connection open; do not wait long for it on shutdown.
    config.graceful_timeout = 3.0
    config.keep_alive_timeout = 600.0
    config.accesslog = None
    config.errorlog = None
    return config


async def register_deployment(admin_url: str, endpoint_url: str, *, attempts: int = 50) -> str:
    """Tell Restate where the endpoint is; returns the deployment id.

    Registering an unchanged endpoint again is a no-op for Restate; when the services changed
    under the same URI (a developer edited a handler), the registration is forced.
    """
    last = ""
    body: dict[str, Any] = {"uri": endpoint_url}
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(attempts):
            try:
                response = await client.post(f"{admin_url.rstrip('/')}/deployments", json=body)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code in (200, 201):
                    _log.info("registered with restate", endpoint=endpoint_url, admin=admin_url)
                    return str(response.json().get("id", ""))
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code == 409 and not body.get("force"):
                    _log.warning("endpoint changed under the same URI; forcing the registration", endpoint=endpoint_url)
                    body["force"] = True
                    continue
            await asyncio.sleep(0.2)
    raise EngineError(f"could not register {endpoint_url} with Restate at {admin_url}: {last}", engine="restate")


async def serve_endpoint(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    llm: str | None = None,
    register: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM), registering at start-up.

    The URI given to Restate is ``restate.endpoint_url`` when set (behind NAT, in Docker),
    else ``http://{host}:{port}``.
    """
    check_schema(settings.database.url)
    bind_host = host or settings.restate.endpoint_host
    bind_port = port or settings.restate.endpoint_port
    recorder = _recorder(settings)
    app = build_asgi_app(settings, llm=llm, recorder=recorder)
    shutdown = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # The Restate app installs its own SIGTERM hook on its first request: it tells in-flight
    # invocations to leave (suspend) so the server can stop; without it an invocation waiting
    # on a promise keeps its stream, and the server, open. A plain add_signal_handler would be
    # replaced by it, so ours goes through the SDK's hook list; Ctrl-C becomes a SIGTERM.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        install_shutdown_hook(loop, shutdown.set, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, signal.raise_signal, signal.SIGTERM)
    server = asyncio.create_task(serve(app, hypercorn_config(bind_host, bind_port), shutdown_trigger=shutdown.wait))
    try:
        if register:
            advertised = settings.restate.endpoint_url or f"http://{bind_host}:{bind_port}"
            try:
                await register_deployment(settings.restate.admin_url, advertised)
            except BaseException:
                shutdown.set()
                with contextlib.suppress(Exception):
                    await server
                raise
        await server
    finally:
        await recorder.close()


async def serve_restate_endpoint(settings: Settings, *, llm: str | None = None) -> None:
    """``ecl server start --engine restate``: serve the configured endpoint and register it."""
    await serve_endpoint(settings, llm=llm)


class EndpointThread:
    """An endpoint served by hypercorn on a background thread with its own event loop.

    For tests, benchmarks and notebooks. ``app_factory`` is called on that thread, so the
    database engines it creates belong to the thread's loop.
    """

    def __init__(
        self,
        app_factory: Callable[[], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cleanup: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._factory = app_factory
        self._cleanup = cleanup
        self.host = host
        self.port = port or _free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The endpoint's URI, as Restate should reach it."""
        return f"http://{self.host}:{self.port}"

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            app = self._factory()
            try:
                await serve(app, hypercorn_config(self.host, self.port), shutdown_trigger=self._stop.wait)
            finally:
                if self._cleanup is not None:
                    await self._cleanup()

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc

    def start(self, timeout: float = 30.0) -> EndpointThread:
        """Start serving; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self._main, name=f"ecl-endpoint-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None or not self._thread.is_alive():
                raise EngineError(f"endpoint thread failed: {self._error!r}", engine="restate")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return self
            time.sleep(0.02)
        raise EngineError(f"endpoint on {self.url} did not start", engine="restate")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
