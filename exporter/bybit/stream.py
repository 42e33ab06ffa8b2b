"""Bybit V5 private websocket: connect, auth, subscribe, JSON ping, reconnect (thin I/O shell).

One :class:`PrivateStream` per account. The decisions live in sans-I/O pieces:
frame parsing in :mod:`.messages`, ping/pong bookkeeping in :class:`.heartbeat.Heartbeat`,
reconnect delays and the per-host connection budget in :mod:`.pacing`. This module only
moves frames and waits, on the :class:`~exporter.runtime.clock.Clock` it is given.

Lifecycle of one connection: open (the URL may carry ``?max_active_time=``), ``auth``
(signature expires a few seconds ahead), one ``subscribe`` with every configured topic,
JSON ``ping`` at once and then on the account's grid (every ``ping_interval``, at its own
``ping_phase``), from a heartbeat task beside the reader. No pong within ``pong_timeout`` ->
close and reconnect. RTT runs from the moment the ping is written to the moment its pong is
read off the socket (:mod:`.wire`), so the exporter's own queueing is not counted as Bybit's.
``bybit_dcp_ws_connected`` is 1 only between an acknowledged subscription and the end of that
connection. Every reconnect is counted with its reason.

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
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from ..dcp import TOPIC_PRODUCT
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from ..secrets import Secret
from . import messages as msg
from . import tls
from .heartbeat import Heartbeat
from .pacing import EQUAL_JITTER, ConnectionBudget, backoff_delay
from .signing import ws_auth_args
from .wire import StampedConnection, stamped_connection

log = logging.getLogger("exporter.stream")
# The websockets library logs every frame at DEBUG, the auth frame (and its signature)
# included. Its records go to this logger, which never passes DEBUG on, whatever the
# process's log level.
wire_log = logging.getLogger("exporter.stream.wire")
wire_log.setLevel(logging.INFO)

OrdersCallback = Callable[[list[dict]], Awaitable[object] | None]
ReconnectedCallback = Callable[[float, float], Awaitable[object] | None]
AckT = TypeVar("AckT", bound=msg.Ack)


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
        metrics: Metrics,
        *,
        on_orders: OrdersCallback,
        on_reconnected: ReconnectedCallback | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        budget: ConnectionBudget | None = None,
    ) -> None:
        self.account = account
        self.config = config
        self.metrics = metrics
        self.on_orders = on_orders
        self.on_reconnected = on_reconnected
        # Wall time for the last-pong gauge, the ping-gap source, auth expiry and downtime;
        # monotonic time for heartbeat scheduling, pong timeouts and RTT.
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        # Shared by every stream of the process (the fleet passes one); a stream alone gets its own.
        self.budget = budget if budget is not None else ConnectionBudget()
        self.heartbeat = Heartbeat(config.ping_interval, config.pong_timeout, config.ping_phase)
        self._connection_class = stamped_connection(clock)
        self._req_ids = msg.ReqIds(f"{self.rng.getrandbits(32):08x}")
        self._host = urlsplit(config.url).hostname or config.url
        self._dcp_products = [TOPIC_PRODUCT[t] for t in config.topics if t in TOPIC_PRODUCT]
        self._started_at: float | None = None
        self._connected = False
        self._ever_connected = False
        self._down_since: float | None = None
        self._last_frame_at: float | None = None
        self._session_pong = False
        self._logged_kinds: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.attempt = 0  # consecutive unhealthy connections (drives the backoff)
        self.auth_attempt = 0  # consecutive auth failures

    # ---- public

    @property
    def connected(self) -> bool:
        return self._connected

    def last_pong_or_start(self) -> float | None:
        return self.heartbeat.last_pong if self.heartbeat.last_pong is not None else self._started_at

    async def run(self) -> None:
        """Connect and stay connected until cancelled. Never raises for network or protocol trouble."""
        self._started_at = self.clock.time()
        self.metrics.ping_gap.set_source(self.account, self.last_pong_or_start)
        try:
            while True:
                reason = await self._one_connection()
                self.metrics.ws_reconnects.labels(self.account, reason).inc()
                if reason == "auth_failed":
                    delay = backoff_delay(
                        self.auth_attempt,
                        self.config.auth_backoff_base,
                        self.config.auth_backoff_cap,
                        self.rng,
                        floor=EQUAL_JITTER,
                    )
                    self.auth_attempt += 1
                else:
                    delay = backoff_delay(self.attempt, self.config.backoff_base, self.config.backoff_cap, self.rng)
                self.attempt += 1
                log.info(
                    "private stream reconnecting",
                    extra={"account": self.account, "reason": reason, "delay_seconds": round(delay, 3)},
                )
                await self.clock.sleep(delay)
        finally:
            self._set_down()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            # Wait for them: nothing started by this stream outlives it.
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one connection

    async def _one_connection(self) -> str:
        wait = self.budget.reserve(self._host, self.clock.monotonic())
        if wait > 0:
            log.warning(
                "connection budget for the host exhausted; waiting",
                extra={"account": self.account, "host": self._host, "wait_seconds": round(wait, 1)},
            )
            await self.clock.sleep(wait)
        self._session_pong = False
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
                try:
                    await self._converse(cast(StampedConnection, ws))  # create_connection made it
                finally:
                    self._set_down()
        except _Reconnect as exc:
            return exc.reason
        except ConnectionClosed as exc:
            log.info("private stream closed", extra={"account": self.account, "error": _short(exc)})
            return "closed"
        except (OSError, TimeoutError, InvalidURI, WebSocketException) as exc:
            if isinstance(exc, InvalidStatus) and _is_redirect(exc):
                log.warning(
                    "private stream redirected; not followed (the credentials would go elsewhere)",
                    extra={"account": self.account, "status": exc.response.status_code},
                )
                return "redirect"
            log.warning(
                "private stream error",
                extra={"account": self.account, "error_type": type(exc).__name__, "error": _short(exc)},
            )
            return "error"
        except Exception:  # e.g. an unusable key: count, back off and keep the process alive
            log.exception("private stream failed unexpectedly", extra={"account": self.account})
            return "error"
        finally:
            if self._session_pong:
                self.attempt = 0  # the connection was healthy: start the backoff afresh
        raise AssertionError("_converse ends only by raising")

    async def _converse(self, ws: StampedConnection) -> None:
        cfg = self.config
        # auth
        req = self._req_ids.next("auth")
        # Expiry is judged by Bybit's clock: if the last pong showed it ahead of ours, add that.
        ahead = max(0.0, self.heartbeat.last_skew or 0.0)
        expires_ms = int((self.clock.time() + ahead + cfg.auth_expiry) * 1000)
        await ws.send(msg.auth_frame(req, ws_auth_args(cfg.api_key, cfg.api_secret, expires_ms)))
        ack = await self._await_ack(ws, msg.AuthAck, req)
        if not ack.success:
            log.warning(
                "private stream auth refused; check the API key, secret and environment",
                extra={"account": self.account, "ret_msg": ack.ret_msg[:200]},
            )
            raise _Reconnect("auth_failed")
        self.auth_attempt = 0

        # subscribe, all topics in one request
        req = self._req_ids.next("subscribe")
        await ws.send(msg.subscribe_frame(req, cfg.topics))
        sub = await self._await_ack(ws, msg.SubscribeAck, req)
        if not sub.success:
            log.warning(
                "private stream subscribe refused",
                extra={"account": self.account, "topics": ",".join(cfg.topics), "ret_msg": sub.ret_msg[:200]},
            )
            raise _Reconnect("subscribe_failed")

        self._set_up()
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
        beat = asyncio.get_running_loop().create_task(self._beat(ws, stop), name=f"{self.account}:heartbeat")
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
                await self._handle(msg.parse_frame(raw), arrived)
            assert stop.reason is not None
            raise _Reconnect(stop.reason)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _beat(self, ws: StampedConnection, stop: _Stop) -> None:
        """Ping on the account's grid; give up on the connection when a pong is overdue."""
        hb = self.heartbeat
        try:
            while True:
                now = self.clock.monotonic()
                if hb.timed_out(now):
                    self.metrics.ws_pong_timeouts.labels(self.account).inc()
                    log.warning(
                        "no pong in time; reconnecting",
                        extra={"account": self.account, "pong_timeout_seconds": self.config.pong_timeout},
                    )
                    stop.give_up("pong_timeout")
                    return
                if hb.ping_due(now):
                    req = self._req_ids.next("ping")
                    await ws.send(msg.ping_frame(req))
                    hb.on_ping_sent(req, self.clock.monotonic())  # written: handed to the socket
                    continue
                deadline = hb.deadline()
                assert deadline is not None  # connected: a ping is always scheduled
                await self.clock.sleep(deadline - now)
        except ConnectionClosed:
            return  # the reader sees the same closed connection and reports it
        except Exception:
            log.exception("heartbeat failed unexpectedly", extra={"account": self.account})
            stop.give_up("error")

    async def _await_ack(self, ws: StampedConnection, kind: type[AckT], req_id: str) -> AckT:
        """Wait for the ack of ``req_id``; other frames are handled (or counted) meanwhile."""
        deadline = self.clock.monotonic() + self.config.handshake_timeout
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                log.warning(
                    "no acknowledgement in time",
                    extra={
                        "account": self.account,
                        "waiting_for": kind.__name__,
                        "timeout_seconds": self.config.handshake_timeout,
                    },
                )
                raise _Reconnect("error")
            try:
                async with self.clock.timeout(remaining):
                    raw, arrived = await ws.recv_stamped()
            except TimeoutError:
                continue
            frame = msg.parse_frame(raw)
            if isinstance(frame, kind) and frame.req_id in (None, req_id):
                return frame
            await self._handle(frame, arrived)

    async def _handle(self, frame: msg.Frame, arrived: float) -> None:
        """``arrived``: the monotonic time the frame was read off the socket."""
        now = self.clock.time()
        if self._connected:
            self._last_frame_at = now
        if isinstance(frame, msg.Pong):
            res = self.heartbeat.on_pong(frame.req_id, arrived, frame.server_ms, wall=now)
            if res.rtt is not None:
                self.metrics.ws_rtt.labels(self.account).observe(res.rtt)
                self._session_pong = True
            if res.gap is not None:
                self.metrics.ws_heartbeat_gap.labels(self.account).observe(res.gap)
            self.metrics.ws_last_pong.labels(self.account).set(now)
            return
        if isinstance(frame, msg.OrderPush):
            await self._deliver_orders(frame.orders)
            return
        if isinstance(frame, msg.Invalid):
            self._invalid(frame.kind, frame.detail)
        else:
            self._invalid(f"unexpected_{type(frame).__name__}", "")

    def _invalid(self, kind: str, detail: str) -> None:
        self.metrics.ws_invalid_messages.labels(self.account).inc()
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            log.warning(
                "skipped a websocket frame it could not understand (further frames of this kind are only counted)",
                extra={"account": self.account, "kind": kind, "detail": detail},
            )

    async def _deliver_orders(self, orders: list[dict]) -> None:
        try:
            result = self.on_orders(orders)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the consumer's bug must not take the heartbeat down
            log.exception("on_orders callback failed", extra={"account": self.account})

    # ---- state

    def _set_up(self) -> None:
        now = self.clock.time()
        self._connected = True
        self._last_frame_at = now
        self.heartbeat.on_connected(self.clock.monotonic())
        self.metrics.ws_connected.labels(self.account).set(1)
        for product in self._dcp_products:
            self.metrics.ws_dcp_subscribed.labels(self.account, product).set(1)
        log.info("private stream up", extra={"account": self.account, "topics": ",".join(self.config.topics)})
        if self._ever_connected and self.on_reconnected is not None:
            down_since = self._down_since if self._down_since is not None else now
            self._spawn(self.on_reconnected, down_since, now)
        self._ever_connected = True

    def _set_down(self) -> None:
        if self._connected:
            # Anything pushed after the last frame we read may be lost: that is the gap.
            self._down_since = self._last_frame_at if self._last_frame_at is not None else self.clock.time()
        self._connected = False
        self.heartbeat.on_disconnected()
        self.metrics.ws_connected.labels(self.account).set(0)
        for product in self._dcp_products:
            self.metrics.ws_dcp_subscribed.labels(self.account, product).set(0)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a callback beside the read loop so a slow backfill never delays a pong."""

        async def call() -> None:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_reconnected callback failed", extra={"account": self.account})

        task = asyncio.get_running_loop().create_task(call(), name=f"{self.account}:on_reconnected")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
