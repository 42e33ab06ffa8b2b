"""Timestamps taken at the wire, so RTT and REST durations describe Bybit and the network.

A pong can wait in the websocket library's queue, and a REST call can wait for a free
connection in the pool, while the event loop is busy with other accounts. Timed from where the
exporter's code happens to look, both would include the exporter's own queueing. So:

- :func:`stamped_connection` gives the websocket connection class whose
  :meth:`~StampedConnection.recv_stamped` returns each message with the (monotonic) moment its
  last frame was read off the socket, in the protocol callback, before any queue.
- :class:`TimedConnector` (and :func:`session_tracing`, the same as aiohttp trace hooks) times
  the REST calls that go by aiohttp (through a proxy; the fleet's own pool,
  :mod:`exporter.http.pool`, times its calls itself): it notes when each request got its
  connection (a :class:`~exporter.http.pool.RequestTiming`), and tells a
  :class:`~exporter.http.pool.PoolObserver` the wait for a pool slot and each new TCP
  connection (the exporter's, :class:`exporter.monitor.rest_metrics.PoolMetrics`, records them
  in ``bybit_dcp_api_connection_wait_seconds`` and ``bybit_dcp_api_connections_opened_total``).

Time comes from the injected clock, as everywhere in ``bybit/``.
"""

from __future__ import annotations

import functools
from collections import deque
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.frames import DATA_OPCODES, Frame
from websockets.protocol import Event
from websockets.typing import Data

from ..http.pool import PoolObserver, RequestTiming
from ..runtime.clock import Clock


class StampedConnection(ClientConnection):
    """A client connection that notes when each message was read off the socket."""

    clock: Clock  # set by stamped_connection()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One arrival time per message, in the order recv() returns the messages: a list, not a
        # deque (an empty deque is 0.8 KB, a list 56 bytes), as it rarely holds more than one.
        self._arrivals: list[float] = []
        # websockets keeps the writers waiting for a drain in a deque it only appends to, removes
        # from and iterates over: a list does the same in 56 bytes instead of 0.8 KB.
        if isinstance(self.drain_waiters, deque) and not self.drain_waiters:
            self.drain_waiters = []  # type: ignore[assignment]

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """The opening handshake, then its headers dropped: nothing reads them once the
        connection is open, and the request's and the response's took 3 KB a connection.
        The response itself stays (websockets tells the handshake's answer from a frame by it,
        and its parser keeps it too), so its headers are emptied in place."""
        await super().handshake(*args, **kwargs)
        self.request = None
        if self.response is not None:
            self.response.headers.clear()

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.fin and event.opcode in DATA_OPCODES:
            self._arrivals.append(self.clock.monotonic())

    async def recv_stamped(self) -> tuple[Data, float]:
        """The next message and the monotonic time its last frame arrived."""
        message = await self.recv()
        return message, self._arrivals.pop(0)


@functools.lru_cache(maxsize=16)
def stamped_connection(clock: Clock) -> type[StampedConnection]:
    """The connection class to give ``websockets.connect(create_connection=...)``, reading ``clock``.

    One class per clock, not per stream: a class costs a kilobyte or two, a thousand streams share one clock."""
    return type("StampedConnection", (StampedConnection,), {"clock": clock})


# The RequestTiming of the REST call under way in this task, for TimedConnector to fill in: the
# caller sets it around the request and resets it after (two steps, cheaper than a ``with``).
REQUEST_TIMING: ContextVar[RequestTiming | None] = ContextVar("request_timing", default=None)


def session_tracing(clock: Clock, observer: PoolObserver) -> aiohttp.TraceConfig:
    """Hooks for the fleet's one session: connection acquired, pool wait, new TCP connections."""

    async def queued(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        ctx.queued_at = clock.monotonic()

    async def dequeued(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        ctx.waited = clock.monotonic() - ctx.queued_at

    async def acquired(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        observer.connection_wait(getattr(ctx, "waited", 0.0))
        if isinstance(ctx.trace_request_ctx, RequestTiming):
            ctx.trace_request_ctx.connected_at = clock.monotonic()

    async def opened(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        observer.connection_opened()
        await acquired(session, ctx, params)

    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(queued)
    trace.on_connection_queued_end.append(dequeued)
    trace.on_connection_reuseconn.append(acquired)
    trace.on_connection_create_end.append(opened)
    trace.freeze()
    return trace


class _Probe:
    """One request's connection events, as aiohttp reports them to a ``Trace``; the same moments
    and the same arithmetic as :func:`session_tracing`'s hooks (the wait is the last queueing's,
    as ``ctx.waited`` is there), the DNS events ignored."""

    __slots__ = ("clock", "observer", "queued_at", "waited")

    def __init__(self, clock: Clock, observer: PoolObserver) -> None:
        self.clock = clock
        self.observer = observer
        self.waited = 0.0

    async def send_connection_queued_start(self) -> None:
        self.queued_at = self.clock.monotonic()

    async def send_connection_queued_end(self) -> None:
        self.waited = self.clock.monotonic() - self.queued_at

    async def send_connection_reuseconn(self) -> None:
        self.observer.connection_wait(self.waited)
        timing = REQUEST_TIMING.get()
        if timing is not None:
            timing.connected_at = self.clock.monotonic()

    async def send_connection_create_end(self) -> None:
        self.observer.connection_opened()
        await self.send_connection_reuseconn()

    async def send_connection_create_start(self) -> None:
        pass

    async def send_dns_resolvehost_start(self, host: str) -> None:
        pass

    async def send_dns_resolvehost_end(self, host: str) -> None:
        pass

    async def send_dns_cache_hit(self, host: str) -> None:
        pass

    async def send_dns_cache_miss(self, host: str) -> None:
        pass


class TimedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that times its connections for a :class:`PoolObserver` and the call's
    :class:`RequestTiming` (see the module docstring); everything else is ``TCPConnector``'s."""

    def __init__(self, clock: Clock, observer: PoolObserver, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wire_clock = clock
        self._pool_observer = observer

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        probe = _Probe(self._wire_clock, self._pool_observer)
        return await super().connect(req, [*traces, probe] if traces else [probe], timeout)  # type: ignore[list-item]
