"""The web listener's own defence: timeouts, a connection cap, TLS per connection, quiet errors.

aiohttp keeps a connection that never finishes its request head for as long as the peer
likes, and logs every malformed request at ERROR with a traceback; a few hundred idle
sockets exhaust the descriptors the websocket needs too. :class:`ConnectionGuard` wraps
aiohttp's protocol factory:

- a request head (or the TLS handshake) must arrive whole within ``header_timeout``
  of the connection opening or of the request's first byte;
- at ``max_connections`` the oldest connection that is not serving a request is closed
  to make room, so a scrape still gets in while idle or slow peers hold the others; only
  when every connection is busy is the new one refused;
- TLS is started per connection with the web config's current context, so a changed
  certificate or client CA applies to the next connection without a restart;
- problems are logged once per kind at WARNING (later ones at DEBUG), never with a
  traceback: a port scanner must not fill the disk.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from .config import WebConfigSource, peer_san_allowed

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds for a TLS handshake or a whole request head
KEEPALIVE_TIMEOUT = 30.0  # seconds an idle keep-alive connection is kept after a response
MAX_CONNECTIONS = 256  # well under the usual 1,024 descriptors, leaving room for the accounts
HEAD_END = b"\r\n\r\n"


class OncePerKind:
    """Logs the first event of each kind at WARNING and the rest at DEBUG, without tracebacks."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._seen: set[str] = set()

    def __call__(self, kind: str, message: str, **extra: Any) -> None:
        level = logging.DEBUG if kind in self._seen else logging.WARNING
        self._seen.add(kind)
        self._log.log(level, message, extra={"kind": kind, **extra})


class QuietServerLogger(logging.LoggerAdapter):
    """What aiohttp's request handler logs to: a bad request is one line per kind, no traceback."""

    def __init__(self, report: OncePerKind) -> None:
        super().__init__(log, {})
        self._report = report

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        self._report(_kind(exc_info), "bad HTTP request refused", error=_one_line(exc_info))

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        self._report(_kind(exc_info), "bad HTTP request refused", error=_one_line(exc_info))


def _kind(exc: Any) -> str:
    return type(exc).__name__ if isinstance(exc, BaseException) else "request"


def _one_line(exc: Any) -> str:
    text = str(exc) if isinstance(exc, BaseException) else ""
    return text.splitlines()[0][:200] if text else ""


class _Connection(asyncio.Protocol):
    """One accepted connection: times its request heads and hands bytes to aiohttp's handler."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.busy = 0  # requests being served (counted by the guard's middleware)
        self.in_head = True  # waiting for (the rest of) a request head
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._tls_task: asyncio.Task[None] | None = None
        self._inner_started = False  # aiohttp's handler has seen connection_made

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self.guard.admit(self):
            return
        self._arm()
        config = self.guard.config.current() if self.guard.config is not None else None
        if config is not None and config.ssl_context is not None:
            self._tls_task = asyncio.get_running_loop().create_task(
                self._start_tls(config.ssl_context, config.client_allowed_sans)
            )
        else:
            self._start_inner(self.transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_head and data:
            self.in_head = True  # the first byte of the next request on a kept-alive connection
            self._tail = b""
            self._arm()
        if self.in_head:
            window = self._tail + data
            if HEAD_END in window:
                self.in_head = False
                self._disarm()
            self._tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.forget(self)
        if self._tls_task is not None and not self._tls_task.done():
            self._tls_task.cancel()
        if self._inner_started:
            self._inner_started = False
            self.inner.connection_lost(exc)

    # ---------------------------------------------------------------- helpers
    def _start_inner(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._inner_started = True
        self.inner.connection_made(transport)

    async def _start_tls(self, context: ssl.SSLContext, allowed_sans: tuple[str, ...]) -> None:
        assert self.transport is not None
        raw = self.transport
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, context, server_side=True, ssl_handshake_timeout=self.guard.header_timeout
            )
        except (OSError, TimeoutError) as exc:  # SSLError and ConnectionError are OSErrors
            self.guard.report(f"tls:{type(exc).__name__}", "TLS handshake failed", error=_one_line(exc))
            raw.abort()
            return
        if tls is None:
            raw.abort()
            return
        peercert = tls.get_extra_info("peercert")
        if not peer_san_allowed(peercert, allowed_sans):
            self.guard.report("tls:san", "client certificate refused: no allowed SAN")
            tls.abort()
            return
        self._start_inner(tls)

    def _arm(self) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        self.guard.report("header_timeout", "connection closed: no complete request in time")
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """aiohttp's protocol factory with the defences of this module's docstring."""

    def __init__(
        self,
        *,
        config: WebConfigSource | None = None,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        self.config = config
        self.keepalive_timeout = keepalive_timeout
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.report = OncePerKind(log)
        self._open: dict[_Connection, None] = {}  # insertion order: oldest first

    async def listen(self, app: web.Application, host: str, port: int) -> tuple[web.AppRunner, asyncio.Server]:
        """Serve ``app`` on ``host:port`` behind this guard; raises OSError when it cannot listen."""
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.keepalive_timeout, logger=QuietServerLogger(self.report)
        )
        await runner.setup()
        assert runner.server is not None  # set by setup()
        try:
            server = await asyncio.get_running_loop().create_server(self.protocol_factory(runner.server), host, port)
        except OSError:
            await runner.cleanup()
            raise
        return runner, server

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """What ``loop.create_server`` takes: aiohttp's ``server`` behind this guard."""
        return lambda: _Connection(self, cast(asyncio.Protocol, server()))

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, conn: _Connection) -> bool:
        if len(self._open) >= self.max_connections:
            victim = next((c for c in self._open if not c.busy), None)
            if victim is None:
                self.report("connection_limit", "connection refused: every connection is serving a request")
                conn.close()
                return False
            self.report("connection_limit", "connection limit reached: closed the oldest idle connection")
            self.forget(victim)
            victim.close()
        self._open[conn] = None
        return True

    def forget(self, conn: _Connection) -> None:
        self._open.pop(conn, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks the connection busy while its request is served, so it is never the one evicted."""
        conn = self._by_transport(request.transport)
        if conn is not None:
            conn.busy += 1
        try:
            return await handler(request)
        finally:
            if conn is not None:
                conn.busy -= 1

    def _by_transport(self, transport: Any) -> _Connection | None:
        for conn in self._open:
            if conn.transport is transport:
                return conn
        return None
