"""The asyncio shell around :mod:`.protocol`: a pool of keep-alive HTTP/1.1 connections (thin I/O).

It decides nothing about an answer: it writes the request the caller built, feeds what the
socket gives to an :class:`~.protocol.AnswerParser`, and hands the :class:`Reply` back from
the callback that completed it. Per call that is one write, one or two reads and one future,
where a general-purpose client spends most of a poll's CPU on its request and response
objects (measured in ``benchmarks/bench_poll.py``).

The pool:

- takes an idle connection to the call's host whenever there is one, and opens a connection
  only while fewer than ``limit`` are in use in all and fewer than ``limit_per_host`` to the
  call's host (idle ones do not count, as in aiohttp); a call that can do neither waits (the
  wait is told to the :class:`PoolObserver`, 0 when it did not wait, as is each new
  connection). Counting idle ones too made a start-up burst across ten hosts close one host's
  idle connection to open another's, over and over: 2,000 TLS handshakes at 1,000 accounts;
- hands a connection given back to the longest waiting call for its host, ahead of calls for
  other hosts that waited longer (at most ``limit`` times in a row, so none waits more than a
  round of the pool), else wakes the first in line that can go. A start-up burst queues calls
  host by host: without a share per host, the call woken for a free slot was mostly for a
  host whose connections were all in use, and opened one while the connection just given
  back sat idle. At 1,000 accounts on ten hosts over TLS that was 760 to 900 handshakes and
  35 MB more resident for good (a handshake's memory is freed in pieces the allocator keeps);
  with ten connections each, 100;
- reuses the most recently used idle connection of the call's host (``https`` with the given
  TLS context), and lets one go once it has been idle ``keepalive`` seconds (found so when a
  call would take it, or when a call ends beside it) or the peer closed it;
- never reuses a connection whose answer was cut, malformed, too large or timed out, or
  that the peer spoke on out of turn: it is closed;
- sends a GET once more, on a new connection, when a reused one turns out to have been closed
  by the peer before any byte of the answer (the peer let it go while it sat idle); any other
  method is never sent twice (the parser reads no answer to a HEAD: none is sent);
- bounds the whole call (the wait for a connection, connecting, TLS, the answer to its last
  byte) by ``timeout``: ``TimeoutError``;
- does not speak to proxies: a call with ``proxy`` set goes to ``through_proxy``, the
  transport given for those.

Time is the injected clock's; every failure is an ``OSError`` (``TimeoutError``, a refused or
reset connection, :class:`~.protocol.ProtocolError`) or :class:`~exporter.runtime.bounded.TooLarge`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ..runtime.bounded import MAX_BODY
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .protocol import Answer, AnswerParser, ProtocolError, request_bytes

#: What one read off a connection takes at most (one TLS record); a larger answer takes more
#: reads. One buffer per pool, shared by its connections (see _Connection).
READ_BYTES = 16 << 10


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer as a REST client reads it (inflated, whole)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class RequestTiming:
    """Filled in by the transport for one call, whether it ends in an answer or a failure."""

    connected_at: float | None = None  # monotonic: the call had its connection (new or reused)


class Transport(Protocol):
    """What sends a REST call: this pool, or an adapter of another client (the seam)."""

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        proxy: str | None,
        timing: RequestTiming,
    ) -> Reply: ...


class PoolObserver(Protocol):
    def connection_wait(self, seconds: float) -> None:
        """A request waited this long for a connection of the pool (0 when one was free)."""

    def connection_opened(self) -> None:
        """A new TCP (and TLS) connection was opened."""


@dataclass(frozen=True, slots=True, eq=False)
class _Origin:
    """Where a URL's calls go: one per URL prefix and pool (``_split`` keeps them), so compared
    and hashed by identity; a call looks its host up in three dicts, and a hash of the fields
    is a tuple hash each time."""

    key: str  # scheme://host:port as the URL wrote it
    host: str
    port: int
    tls: ssl.SSLContext | None
    host_header: str


class _Connection(asyncio.BufferedProtocol):
    """One socket: idle in the pool, or carrying one request whose answer it parses.

    A buffered protocol: the socket is read into the pool's one buffer of :data:`READ_BYTES`,
    where a plain protocol has asyncio allocate 256 KiB for every read (and shrink and free it
    again), for answers of a few hundred bytes. One buffer serves every connection: asyncio
    reads into it and hands the bytes over in the same callback (``buffer_updated``), and the
    parser copies them before anything else runs."""

    __slots__ = (
        "_buffer",
        "_loop",
        "_on_idle_loss",
        "_parser",
        "_waiter",
        "idle_since",
        "lost",
        "origin",
        "transport",
    )

    def __init__(self, origin: _Origin, on_idle_loss: Callable[[_Connection], None], buffer: memoryview) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.lost = False
        self._parser: AnswerParser | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._on_idle_loss = on_idle_loss
        self._buffer = buffer
        self._loop = asyncio.get_running_loop()  # once: each lookup of the running loop is a getpid()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def exchange(self, request: bytes, limit: int) -> asyncio.Future[Answer]:
        """Send ``request``; the future is the answer (or the failure that ended it)."""
        assert self.transport is not None
        self._parser = AnswerParser(limit)
        self._waiter = waiter = self._loop.create_future()
        self.transport.write(request)
        return waiter

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._buffer[:nbytes])

    def answer_started(self) -> bool:
        return self._parser is not None and self._parser.started

    def done(self) -> None:
        """The exchange is over (answered or abandoned): the connection is idle or to be closed."""
        self._parser = None
        self._waiter = None

    def data_received(self, data: bytes | memoryview) -> None:
        parser = self._parser
        if parser is None or parser.answer is not None:  # the peer talks out of turn: let it go
            self.close()
            return
        try:
            parser.feed(data)
        except Exception as exc:  # ProtocolError, TooLarge, BadEncoding: this answer ends here
            self._settle(exc)
            return
        if parser.answer is not None:
            self._settle(parser.answer)

    def eof_received(self) -> bool:
        return False  # the transport closes, and connection_lost ends the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        parser = self._parser
        if parser is None:
            self._on_idle_loss(self)
            return
        try:
            parser.closed()
        except ProtocolError as error:
            self._settle(error)
        else:
            if parser.answer is not None:
                self._settle(parser.answer)

    def _settle(self, outcome: Answer | BaseException) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive HTTP/1.1 connections for every REST call of the process (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        observer: PoolObserver | None = None,
        limit: int = 100,
        keepalive: float = 60.0,
        limit_per_host: int | None = None,
        tls: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        through_proxy: Transport | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        if limit < 1:
            raise ValueError("a pool needs room for one connection at least")
        if limit_per_host is not None and limit_per_host < 1:
            raise ValueError("a pool needs room for one connection to each host at least")
        self._clock = clock
        self._observer = observer
        self._limit = limit
        self._limit_per_host = limit if limit_per_host is None else limit_per_host
        self._keepalive = keepalive
        self._tls = tls
        self._headers = dict(headers or {})
        self._through_proxy = through_proxy
        self._max_body = max_body
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._busy = 0  # connections in use or being opened (idle ones are not counted)
        self._in_use: dict[_Origin, int] = {}  # ... and of them, to each host
        # The calls waiting for room, each host's in the order they came, with their place in line.
        self._waiting: dict[_Origin, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._places = 0  # places in line given so far
        self._passed_over = 0  # calls woken for the host of a connection given back, ahead of the first in line
        self._closed = False
        self._read_buffer = memoryview(bytearray(READ_BYTES))

    @property
    def open_connections(self) -> int:
        """In use, being opened or idle."""
        return self._busy + sum(len(idle) for idle in self._idle.values())

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
        proxy: str | None = None,
        timing: RequestTiming | None = None,
    ) -> Reply:
        """``url`` is sent as written (its path and query byte for byte); ``headers`` follow the
        pool's own (a User-Agent) and the Host; ``timing`` learns when the call had its connection."""
        if proxy is not None:
            if self._through_proxy is None:
                raise ValueError("this pool has no transport for calls through a proxy")
            return await self._through_proxy.send(
                method, url, headers, body, timeout, proxy, timing if timing is not None else RequestTiming()
            )
        if self._closed:
            raise ProtocolError("the pool is closed")
        origin, target = self._split(url)
        fields = {**self._headers, **headers} if self._headers else headers
        request = request_bytes(method, target, origin.host_header, fields, body)
        async with self._clock.timeout(timeout):
            for attempt in (1, 2):
                connection, reused = await self._acquire(origin)
                if timing is not None:
                    timing.connected_at = self._clock.monotonic()
                try:
                    answer = await connection.exchange(request, self._max_body)
                except ProtocolError:
                    stale = reused and connection.lost and not connection.answer_started()
                    self._drop(connection)
                    if stale and attempt == 1 and method == "GET":
                        continue  # the peer had let it go while it sat idle: once more, anew
                    raise
                except BaseException:
                    self._drop(connection)
                    raise
                self._release(connection, answer.keep_alive)
                return Reply(answer.status, answer.headers, answer.body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Close every idle connection; one in use is closed when its call ends."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for queue in self._waiting.values():
            for _, waiter in queue:
                if not waiter.done():
                    waiter.set_exception(ProtocolError("the pool is closed"))
        self._waiting.clear()
        await asyncio.sleep(0)  # let the transports' closing callbacks run

    # ------------------------------------------------------------------ connections

    async def _acquire(self, origin: _Origin) -> tuple[_Connection, bool]:
        """An idle connection to ``origin`` (reused: True) or a new one, waiting for room if need be."""
        queued_at: float | None = None
        place = 0
        while True:
            connection = self._idle_connection(origin)
            if connection is not None:
                self._take(origin, queued_at)
                return connection, True
            if self._may_open(origin):
                self._take(origin, queued_at)
                return await self._connect(origin), False
            queue = self._waiting.setdefault(origin, deque())
            waiter = asyncio.get_running_loop().create_future()
            if place:  # woken first of its host, and beaten to the room: first of its host again
                queue.appendleft((place, waiter))
            else:
                queued_at = self._clock.monotonic()
                self._places = place = self._places + 1
                queue.append((place, waiter))
            try:
                await waiter
            except BaseException:  # cancelled, its future too: skipped when reached in the queue
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake()  # woken, then cancelled: the room goes to the next in line
                raise

    def _may_open(self, origin: _Origin) -> bool:
        return self._busy < self._limit and self._in_use.get(origin, 0) < self._limit_per_host

    def _take(self, origin: _Origin, queued_at: float | None) -> None:
        self._busy += 1
        self._in_use[origin] = self._in_use.get(origin, 0) + 1
        self._waited(queued_at)

    def _give_back(self, origin: _Origin) -> None:
        self._busy -= 1
        self._in_use[origin] -= 1

    def _waited(self, queued_at: float | None) -> None:
        if self._observer is not None:
            self._observer.connection_wait(0.0 if queued_at is None else self._clock.monotonic() - queued_at)

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self._clock.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be open still
            if not connection.lost and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: _Origin) -> _Connection:
        """A new connection to ``origin``, its slot already counted in ``_busy``."""
        connection = _Connection(origin, self._lost_while_idle, self._read_buffer)
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: connection,
                origin.host,
                origin.port,
                ssl=origin.tls,
                server_hostname=origin.host if origin.tls is not None else None,
            )
        except BaseException:
            self._give_back(origin)
            self._wake()
            raise
        if self._observer is not None:
            self._observer.connection_opened()
        return connection

    def _release(self, connection: _Connection, keep_alive: bool) -> None:
        connection.done()
        if keep_alive and not connection.lost and not self._closed:
            now = connection.idle_since = self._clock.monotonic()
            idle = self._idle.setdefault(connection.origin, [])
            # Reuse takes the newest, so the oldest would sit idle for good after a burst (start-up
            # opens up to `limit`): those idle past the keep-alive go here.
            while idle and now - idle[0].idle_since >= self._keepalive:
                idle.pop(0).close()
            idle.append(connection)
            self._give_back(connection.origin)
            self._wake(connection.origin)
            return
        connection.close()
        self._give_back(connection.origin)
        self._wake()

    def _drop(self, connection: _Connection) -> None:
        connection.done()
        connection.close()
        self._give_back(connection.origin)
        self._wake()

    def _lost_while_idle(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    def _wake(self, kept: _Origin | None = None) -> None:
        """Room for one more call: for the first waiting for ``kept`` (the host of the connection
        just made idle, which that call takes), else for the first in line that can go now (a
        host at its ``limit_per_host`` waits for its own); see the module docstring."""
        first: tuple[int, _Origin] | None = None  # the first in line
        ready: tuple[int, _Origin] | None = None  # ... and the first that can go now
        for origin, queue in self._waiting.items():
            while queue and queue[0][1].done():
                queue.popleft()
            if not queue:
                continue
            place = queue[0][0]
            if first is None or place < first[0]:
                first = (place, origin)
            if (ready is None or place < ready[0]) and (
                origin is kept or self._idle.get(origin) or self._may_open(origin)
            ):
                ready = (place, origin)
        if first is None:
            self._waiting.clear()  # every queue empty: the next wake (every call's end) looks at none
            return
        same = self._waiting.get(kept) if kept is not None else None
        if same and (first[1] is kept or self._passed_over < self._limit):
            self._passed_over = 0 if first[1] is kept else self._passed_over + 1
            same.popleft()[1].set_result(None)
        elif ready is not None:
            if ready[1] is first[1]:
                self._passed_over = 0
            self._waiting[ready[1]].popleft()[1].set_result(None)

    # ------------------------------------------------------------------ URLs

    def _split(self, url: str) -> tuple[_Origin, str]:
        """The origin (parsed once per host) and the target (path and query, as written)."""
        start = url.find("://")
        slash = url.find("/", start + 3) if start >= 0 else -1
        key = url if slash < 0 else url[:slash]
        target = "/" if slash < 0 else url[slash:]
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = self._origin(key)
        return origin, target

    def _origin(self, key: str) -> _Origin:
        parts = urlsplit(key)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {key!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("a URL with credentials in it")
        tls = None
        if scheme == "https":
            tls = self._tls if self._tls is not None else ssl.create_default_context()
        default = 443 if tls is not None else 80
        port = parts.port or default
        return _Origin(key, parts.hostname, port, tls, parts.netloc)
