"""Bybit V5 private websocket: connect, auth, subscribe, JSON ping, reconnect (thin I/O shell).

One :class:`PrivateStream` per connection an owner wants held. The decisions live in sans-I/O
pieces: the conversation (lifecycle, heartbeat, attempt counters, downtime, log-once of invalid
frames, the reconnect delay) in :class:`.session.StreamSession`, frame parsing in
:mod:`.messages`, the per-host connection budget in :mod:`.pacing`. This module only moves
frames, waits on the :class:`~exporter.runtime.clock.Clock` it is given, and hands the
session's events to a :class:`StreamObserver`: it records no metric and writes no log line of
its own, so the monitor, the guardian's guarded connection and the drill all use it, each with
an observer of its own (the exporter's is :class:`exporter.monitor.stream_metrics.StreamMetrics`).

Lifecycle of one connection: open (the URL may carry ``?max_active_time=``), ``auth``
(signature expires a few seconds ahead), one ``subscribe`` with every configured topic,
JSON ``ping`` at once and then on the account's grid (every ``ping_interval``, at its own
``ping_phase``), from a heartbeat task beside the reader. No pong within ``pong_timeout`` ->
close and reconnect. RTT runs from the moment the ping is written to the moment its pong is
read off the socket (:mod:`.wire`), so the exporter's own queueing is not counted as Bybit's.
The observer hears :class:`~.session.Connected` only for an acknowledged subscription and
:class:`~.session.Disconnected` at the end of every connection; every reconnect comes with its
reason and delay.

An owner can end the stream on purpose without a reconnect: :meth:`PrivateStream.abort` drops
the TCP connection without a close frame, :meth:`PrivateStream.go_silent` stops pinging and
handing frames on while the socket stays open until Bybit closes it (the drill's two cuts).

The stream subscribes exactly the topics it is given. Observer mode gives ``("order",)``;
a ``dcp.*`` topic makes this connection one of the account's protected connections,
which keeps DCP from firing while the exporter lives (see docs/stream.md).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from ..runtime.clock import SYSTEM_CLOCK, Alarm, Clock
from ..secrets import Secret
from . import messages as msg
from . import tls
from .errors import BybitError
from .heartbeat import Heartbeat, PongResult
from .pacing import ConnectionBudget
from .session import (
    CLOSED_REASON,
    ERROR,
    PING_DUE,
    REDIRECT,
    BudgetWait,
    CallbackFailed,
    Connected,
    ConnectionLost,
    Event,
    PongTimeout,
    Refused,
    StreamSession,
)
from .timeframe import TimeFrame
from .wire import StampedConnection, stamped_connection

# The websockets library logs every frame at DEBUG, the auth frame (and its signature)
# included. Its records go to this logger, which never passes DEBUG on, whatever the
# process's log level.
wire_log = logging.getLogger("exporter.stream.wire")
wire_log.setLevel(logging.INFO)

OrdersCallback = Callable[[list[dict]], Awaitable[object] | None]
ReconnectedCallback = Callable[[float, float], Awaitable[object] | None]
LearnTime = Callable[[], Awaitable[object]]  # reads Bybit's server time into the time frame


class StreamObserver(Protocol):
    """What an owner of a stream hears: every :data:`~.session.Event` but the order pushes
    (those go to ``on_orders``). Called on the event loop, once per event; keep it cheap: a
    pong's event comes once per ping per account."""

    def on_event(self, event: Event) -> None: ...


@dataclass(frozen=True)
class StreamConfig:
    url: str
    api_key: str
    api_secret: Secret
    topics: tuple[str, ...]
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    ping_phase: float = 0.0  # the account's slot within the interval (pacing.stable_phase)
    # Reconnect policy: full-jitter exponential backoff; auth failures wait longer.
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_backoff_base: float = 10.0
    auth_backoff_cap: float = 300.0
    handshake_timeout: float = 10.0  # each of: open, auth ack, subscribe ack
    close_timeout: float = 2.0
    auth_expiry: float = 5.0  # seconds ahead of now for the auth signature's expiry
    max_frame_bytes: int = 8 * 1024 * 1024

    def __repr__(self) -> str:  # the secret masks itself; keep the key out too
        return f"StreamConfig(url={self.url!r}, topics={self.topics!r})"


class _connect_here(connect):
    """Never follows a redirect: the auth frame (key and signature, replayable for seconds) and a
    guardian's ``dcp.*`` subscription would go to whatever host the redirect names."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


@functools.lru_cache(maxsize=64)
def proxy_for(url: str) -> str | None:
    """The proxy the websockets library would pick for ``url`` (from ``*_PROXY`` / ``NO_PROXY``),
    worked out once per URL, not on every connection: it walks the whole environment, about
    2 ms with the thousand ``api_secret_env`` variables of a thousand accounts."""
    try:
        return get_proxy(parse_uri(url))
    except InvalidURI:
        return None  # the connection attempt reports the bad URL


def _is_redirect(exc: InvalidStatus) -> bool:
    return 300 <= exc.response.status_code < 400


class _Stop:
    """How the heartbeat task ends the reader of one connection.

    The reader is interrupted only while it waits on the socket, never while it hands orders
    on; ``interrupted`` tells that cancellation apart from the process shutting down."""

    __slots__ = ("interrupted", "reader", "reading", "reason")

    def __init__(self, reader: asyncio.Task[Any]) -> None:
        self.reader = reader
        self.reason: str | None = None
        self.reading = False
        self.interrupted = False

    def give_up(self, reason: str) -> None:
        self.reason = reason
        if self.reading and not self.interrupted:
            self.interrupted = True
            self.reader.cancel()


class _Reconnect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- the I/O shell --------------------------------------------------------------------------


class PrivateStream:
    def __init__(
        self,
        account: str,
        config: StreamConfig,
        observer: StreamObserver,
        *,
        on_orders: OrdersCallback,
        on_reconnected: ReconnectedCallback | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        budget: ConnectionBudget | None = None,
        timeframe: TimeFrame | None = None,
        learn_time: LearnTime | None = None,
    ) -> None:
        self.account = account
        self.config = config
        # Reads Bybit's server time (the REST client's, into the shared ``timeframe``) when the
        # session asks for it: before the first auth, and again after a refused one.
        self.learn_time = learn_time
        self.observer = observer
        self.on_orders = on_orders
        self.on_reconnected = on_reconnected
        # Wall time for the last-pong gauge, the ping-gap source, auth expiry and downtime;
        # monotonic time for heartbeat scheduling, pong timeouts and RTT.
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        # Shared by every stream of the process (the fleet passes one); a stream alone gets its own.
        self.budget = budget if budget is not None else ConnectionBudget()
        self.session = StreamSession(
            config.api_key,
            config.api_secret,
            config.topics,
            ping_interval=config.ping_interval,
            pong_timeout=config.pong_timeout,
            ping_phase=config.ping_phase,
            backoff_base=config.backoff_base,
            backoff_cap=config.backoff_cap,
            auth_backoff_base=config.auth_backoff_base,
            auth_backoff_cap=config.auth_backoff_cap,
            handshake_timeout=config.handshake_timeout,
            auth_expiry=config.auth_expiry,
            timeframe=timeframe,
            rng=self.rng,
        )
        self._connection_class = stamped_connection(clock)
        self._host = urlsplit(config.url).hostname or config.url
        self._tasks: set[asyncio.Task] = set()
        self._ws: StampedConnection | None = None
        self._beating: asyncio.Task[None] | None = None
        self._pong_alarm: Alarm | None = None  # armed while a ping waits for its pong
        self._halted = False  # abort() or go_silent(): no reconnect once this connection ends
        self._silent = False

    # ---- public

    @property
    def connected(self) -> bool:
        return self.session.live

    @property
    def heartbeat(self) -> Heartbeat:
        return self.session.heartbeat

    @property
    def attempt(self) -> int:
        return self.session.attempt

    @property
    def auth_attempt(self) -> int:
        return self.session.auth_attempt

    def last_pong_or_start(self) -> float | None:
        return self.session.last_pong_or_start()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, and do not reconnect: :meth:`run` ends."""
        self._halted = True
        if self._ws is not None:
            self._ws.transport.abort()

    def go_silent(self) -> None:
        """Stop pinging and stop handing frames on; the socket stays open until the other side
        closes it, then :meth:`run` ends without a reconnect."""
        self._halted = self._silent = True
        self._disarm()
        if self._beating is not None:
            self._beating.cancel()

    async def run(self) -> None:
        """Connect and stay connected until cancelled (or halted). Never raises for network or protocol trouble."""
        observer, session = self.observer, self.session
        observer.on_event(session.start(self.clock.time()))
        try:
            while not self._halted:
                reason = await self._one_connection()
                if self._halted:
                    break
                reconnect = session.reconnect(reason)
                observer.on_event(reconnect)
                await self.clock.sleep(reconnect.delay)
        finally:
            observer.on_event(session.disconnected(self.clock.time()))
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            # Wait for them: nothing started by this stream outlives it.
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one connection

    async def _one_connection(self) -> str:
        wait = self.budget.reserve(self._host, self.clock.monotonic())
        if wait > 0:
            self.observer.on_event(BudgetWait(self._host, wait))
            await self.clock.sleep(wait)
        if self.learn_time is not None and self.session.needs_time():
            await self._learn_time(self.learn_time)
        cfg = self.config
        proxy = proxy_for(cfg.url)
        # One TLS context for all (see .tls); websockets refuses any for ws:// or an http:// proxy.
        proxy_tls: dict[str, Any] = (
            {"proxy_ssl": tls.client_context()} if proxy is not None and tls.is_secure(proxy) else {}
        )
        try:
            async with _connect_here(
                cfg.url,
                open_timeout=cfg.handshake_timeout,
                close_timeout=cfg.close_timeout,
                ping_interval=None,  # the JSON ping is the heartbeat Bybit (and DCP) counts
                compression=None,  # frames are tiny JSON; deflate's zlib contexts cost ~190 KB a socket
                max_size=cfg.max_frame_bytes,
                proxy=proxy,
                ssl=tls.context_for(cfg.url),
                **proxy_tls,
                logger=wire_log,
                create_connection=self._connection_class,
            ) as ws:
                self._ws = cast(StampedConnection, ws)  # create_connection made it
                try:
                    if self._halted:  # aborted while it was opening
                        ws.transport.abort()
                    await self._converse(self._ws)
                finally:
                    self._ws = None
                    self.observer.on_event(self.session.disconnected(self.clock.time()))
        except _Reconnect as exc:
            return exc.reason
        except ConnectionClosed as exc:
            self.observer.on_event(ConnectionLost(CLOSED_REASON, type(exc).__name__, str(exc)))
            return CLOSED_REASON
        except (OSError, TimeoutError, InvalidURI, WebSocketException) as exc:
            if isinstance(exc, InvalidStatus) and _is_redirect(exc):
                status = exc.response.status_code
                self.observer.on_event(ConnectionLost(REDIRECT, type(exc).__name__, str(exc), status=status))
                return REDIRECT
            self.observer.on_event(ConnectionLost(ERROR, type(exc).__name__, str(exc)))
            return ERROR
        except Exception as exc:  # e.g. an unusable key: count, back off and keep the process alive
            self.observer.on_event(ConnectionLost(ERROR, type(exc).__name__, str(exc), unexpected=exc))
            return ERROR
        raise AssertionError("_converse ends only by raising")

    async def _learn_time(self, learn: LearnTime) -> None:
        """Bybit's server time before an auth; a failure (counted by the REST client's observer)
        leaves the offset as it was and the connection goes ahead."""
        try:
            await learn()
        except BybitError:
            pass
        self.session.time_read()

    async def _converse(self, ws: StampedConnection) -> None:
        """Auth, then subscribe (each acknowledgement awaited for ``handshake_timeout``), then live."""
        session, clock = self.session, self.clock
        await ws.send(session.opened(clock.monotonic(), clock.time()))
        while True:
            now = clock.monotonic()
            overdue = session.ack_overdue(now)
            if overdue is not None:
                self.observer.on_event(overdue)
                raise _Reconnect(overdue.reason)
            assert session.ack_deadline is not None  # waiting for an acknowledgement
            try:
                async with clock.timeout(session.ack_deadline - now):
                    raw, arrived = await ws.recv_stamped()
            except TimeoutError:
                continue
            out = session.receive(msg.parse_frame(raw), arrived, clock.time())
            if out is None:
                continue
            if type(out) is str:
                await ws.send(out)
            elif type(out) is Connected:
                self._up(out)
                break
            elif type(out) is Refused:
                self.observer.on_event(out)
                raise _Reconnect(out.reason)
            else:
                await self._hand_on(cast(Event, out))
        await self._read_while_beating(ws)

    async def _read_while_beating(self, ws: StampedConnection) -> None:
        """Read frames while a second task keeps the heartbeat; end with the reason it gave up.

        The reader waits on the socket with no timeout, and the heartbeat task sleeps until the
        next ping or pong deadline: a plain sleep each, where one loop waking its read with a
        timeout for every ping cost a cancelled read and a raised exception per account per cycle.
        """
        reader = asyncio.current_task()
        assert reader is not None
        stop = _Stop(reader)
        # Looked up once per connection, not once per frame: a pong comes every ping.
        session = self.session
        receive, parse, wall, on_event = session.receive, msg.parse_frame, self.clock.time, self.observer.on_event
        beat = asyncio.get_running_loop().create_task(self._beat(ws, stop), name=f"{self.account}:heartbeat")
        self._beating = beat
        try:
            while stop.reason is None:
                stop.reading = True
                try:
                    raw, arrived = await ws.recv_stamped()
                except asyncio.CancelledError:
                    if stop.interrupted and reader.uncancel() == 0:
                        break  # the heartbeat's doing, not a shutdown
                    raise
                finally:
                    stop.reading = False
                if self._silent:
                    continue
                out = receive(parse(raw), arrived, wall())
                if type(out) is msg.OrderPush:
                    await self._hand_on(out)
                elif out is not None:  # a pong, mostly: handed on without a coroutine of its own
                    on_event(cast(Event, out))
                    if type(out) is PongResult and session.pong_deadline() is None:
                        self._disarm()  # every ping answered: nothing to watch until the next
            assert stop.reason is not None
            raise _Reconnect(stop.reason)
        finally:
            self._beating = None
            self._disarm()
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _beat(self, ws: StampedConnection, stop: _Stop) -> None:
        """Ping on the account's grid, and arm the pong watch (:meth:`_watch_pong`) for each ping.

        The task sleeps from ping to ping only: a pong's deadline is a timer beside it, which the
        pong disarms. After a ping the moment it was written is the ``now`` of the sleep that
        follows: no second clock read and no second ask of the session, which could only answer
        "sleep" (a pong overdue by then is the watch's to report)."""
        session, monotonic, sleep = self.session, self.clock.monotonic, self.clock.sleep
        if self._silent:  # gone silent while this connection opened
            return
        ring = functools.partial(self._pong_alarm_rang, stop)  # once a connection, not once a ping
        try:
            while True:
                now = monotonic()
                todo = session.beat(now)
                if todo is PING_DUE:
                    await ws.send(session.ping_frame())
                    now = monotonic()
                    session.ping_written(now)  # written: handed to the socket
                    if self._pong_alarm is None:  # else it watches an older ping, then this one
                        self._watch_pong(ring)
                elif todo is not None:  # the pong is overdue (and the watch had not run yet)
                    self._pong_overdue(cast(PongTimeout, todo), stop)
                    return
                await sleep(session.next_ping() - now)
        except ConnectionClosed:
            return  # the reader sees the same closed connection and reports it
        except Exception as exc:
            self._failed(exc, stop)

    def _watch_pong(self, ring: Callable[[], None]) -> None:
        """Arm the alarm for the oldest unanswered ping's deadline (nothing to arm: every ping answered)."""
        due = self.session.pong_deadline()
        if due is not None:
            self._pong_alarm = self.clock.call_at(due, ring)

    def _pong_alarm_rang(self, stop: _Stop) -> None:
        """A pong's deadline came and no pong disarmed it: give up on the connection, or watch on
        (a later ping is still unanswered, or the timer rang a hair early)."""
        self._pong_alarm = None
        if stop.reason is not None:  # the connection is ending already
            return
        try:
            overdue = self.session.pong_overdue(self.clock.monotonic())
            if overdue is not None:
                self._pong_overdue(overdue, stop)
            else:
                self._watch_pong(functools.partial(self._pong_alarm_rang, stop))
        except Exception as exc:  # an observer's bug: as in the heartbeat task
            self._failed(exc, stop)

    def _pong_overdue(self, timeout: PongTimeout, stop: _Stop) -> None:
        self._disarm()
        self.observer.on_event(timeout)
        stop.give_up(timeout.reason)

    def _failed(self, exc: Exception, stop: _Stop) -> None:
        self._disarm()
        self.observer.on_event(CallbackFailed("heartbeat", exc))
        stop.give_up(ERROR)

    def _disarm(self) -> None:
        alarm, self._pong_alarm = self._pong_alarm, None
        if alarm is not None:
            alarm.cancel()

    async def _hand_on(self, event: Event) -> None:
        """Orders to ``on_orders``, every other event to the observer."""
        if type(event) is msg.OrderPush:
            try:
                result = self.on_orders(event.orders)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # the consumer's bug must not take the heartbeat down
                self.observer.on_event(CallbackFailed("on_orders", exc))
        else:
            self.observer.on_event(event)

    def _up(self, connected: Connected) -> None:
        self.observer.on_event(connected)
        if connected.down_since is not None and self.on_reconnected is not None:
            self._spawn(self.on_reconnected, connected.down_since, connected.at)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a callback beside the read loop so a slow backfill never delays a pong."""

        async def call() -> None:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self.observer.on_event(CallbackFailed("on_reconnected", exc))

        task = asyncio.get_running_loop().create_task(call(), name=f"{self.account}:on_reconnected")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
