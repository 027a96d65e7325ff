"""A loopback TCP proxy that a test can cut: the network between ECL and its database.

It forwards ``127.0.0.1:<port>`` to a target (PostgreSQL). :meth:`TcpProxy.stop` refuses
new connections and drops the open ones with a reset, as a database host that went away
does; :meth:`TcpProxy.start` listens again on the same port. It runs its own event loop
in a daemon thread, so synchronous tests and subprocesses can use it alike.

:class:`TcpBalancer` is the same proxy spreading connections over several targets (replicas
behind a load balancer); a target that refuses connections is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any


class TcpProxy:
    """Forwards loopback connections to ``target``; can be stopped and restarted."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.accepted = 0
        """Client connections accepted so far (all runs)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def listening(self) -> bool:
        """Whether it accepts connections now."""
        return self._server is not None

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    def start(self) -> TcpProxy:
        """Listen (again) on the same port."""
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Refuse new connections and reset every open one."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop and end the proxy's thread."""
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ on the proxy's loop

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant before stop()
            _reset(client_w)
            return
        self.accepted += 1
        try:
            upstream_r, upstream_w = await self._open_upstream()
        except OSError:
            _reset(client_w)
            return
        pair = {client_w, upstream_w}
        self._writers |= pair
        try:
            await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))
        finally:
            self._writers -= pair
            for writer in pair:
                _reset(writer)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(*self.target)


class TcpBalancer(TcpProxy):
    """Spreads connections round-robin over several targets, as a load balancer in front of
    replicas does; a target that refuses the connection (a dead replica) is skipped."""

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        super().__init__(*targets[0])
        self.targets = list(targets)
        self.served = [0] * len(targets)
        """Connections forwarded to each target so far."""
        self._next = 0

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for _ in self.targets:
            index = self._next
            self._next = (index + 1) % len(self.targets)
            try:
                pair = await asyncio.open_connection(*self.targets[index])
            except OSError:
                continue
            self.served[index] += 1
            return pair
        raise OSError("no target accepts connections")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not a polite FIN: the peer sees the connection break."""
    transport = writer.transport
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def proxied(host: str, port: int) -> Iterator[TcpProxy]:
    """A started proxy to ``host:port``, closed at the end."""
    proxy = TcpProxy(host, port)
    try:
        yield proxy.start()
    finally:
        proxy.close()
