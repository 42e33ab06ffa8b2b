"""One account's private-stream conversation, with no I/O (sans-I/O: frames and ``now`` in, frames and events out).

:class:`StreamSession` is what :class:`~.stream.PrivateStream` knows about Bybit's private
stream, without a socket, a clock or a metric: the shell hands it each parsed frame with the
moment it arrived and asks it what to send and what happened. The shape is the websockets
library's own split (``protocol.py`` beside ``asyncio/connection.py``): everything that can be
decided from the frames and the time is decided here, so it is tested with plain numbers and
reused by every client of the stream (the monitor, the guardian's guarded connection, the drill).

It holds:

- the lifecycle of one connection: ``auth`` (the frame it signs, the expiry judged by
  Bybit's clock as the account's :class:`~.timeframe.TimeFrame` knows it), ``subscribe`` (every topic in one request),
  ``live`` (a subscription acknowledged), ``closed``;
- the :class:`~.heartbeat.Heartbeat` (pings on the account's grid, pong timeouts, RTT, gap, skew);
- the attempt counters: ``attempt`` (consecutive connections without a pong, for the backoff)
  and ``auth_attempt`` (consecutive refused auths, which back off longer);
- when the stream went down (the last frame read while it was live), handed out with the next
  :class:`Connected` so the owner can backfill the gap;
- which kinds of invalid frame were seen already, so each kind is logged once;
- the reconnect decision: a reason in, a :class:`Reconnect` with its delay out (an injected rng).

Time comes in as arguments: ``now`` is monotonic (deadlines, RTT), ``wall`` is unix time (the
last-pong gauge, the backfill's interval, auth expiry). Nothing here reads a clock.

Events are small objects with ``__slots__``; a pong gives one :class:`~.heartbeat.PongResult`
(the heartbeat's answer, handed on as it is) and an order push gives its :class:`~.messages.OrderPush`,
so a ping cycle allocates nothing it did not before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Final

from ..dcp import TOPIC_PRODUCT
from ..secrets import Secret
from . import messages as msg
from .heartbeat import Heartbeat, PongResult
from .pacing import EQUAL_JITTER, backoff_delay
from .signing import ws_auth_args
from .timeframe import TimeFrame

AUTH, SUBSCRIBE, LIVE, CLOSED = "auth", "subscribe", "live", "closed"

# The reasons a connection ends, as counted in ``bybit_dcp_ws_reconnects_total``.
AUTH_FAILED, SUBSCRIBE_FAILED, PONG_TIMEOUT, CLOSED_REASON, ERROR, REDIRECT = (
    "auth_failed",
    "subscribe_failed",
    "pong_timeout",
    "closed",
    "error",
    "redirect",
)


# ---- events ---------------------------------------------------------------------------------


class Started:
    """The stream runs; ``last_pong_or_start`` reads the wall time of the last pong (or of the start)."""

    __slots__ = ("at", "last_pong_or_start")

    def __init__(self, at: float, last_pong_or_start: Callable[[], float | None]) -> None:
        self.at = at
        self.last_pong_or_start = last_pong_or_start


class Connected:
    """A subscription was acknowledged. ``down_since`` is None for the stream's first connection;
    after a reconnect it is the wall time of the last frame read before the stream went down."""

    __slots__ = ("at", "down_since", "products", "topics")

    def __init__(self, at: float, down_since: float | None, topics: tuple[str, ...], products: tuple[str, ...]):
        self.at = at
        self.down_since = down_since
        self.topics = topics
        self.products = products  # the DCP products this connection protects


class Disconnected:
    """The connection is over (or never got as far as a subscription); ``products`` as in :class:`Connected`."""

    __slots__ = ("products",)

    def __init__(self, products: tuple[str, ...]) -> None:
        self.products = products


class PingDue:
    """The heartbeat wants a ping sent now (one shared instance: it carries nothing)."""

    __slots__ = ()


PING_DUE: Final = PingDue()


class PongTimeout:
    """The oldest ping waited ``pong_timeout`` seconds: the connection is given up."""

    __slots__ = ("pong_timeout",)
    reason = PONG_TIMEOUT

    def __init__(self, pong_timeout: float) -> None:
        self.pong_timeout = pong_timeout


class Refused:
    """Bybit refused the ``auth`` or the ``subscribe`` request (``op``); its ``ret_msg``, shortened."""

    __slots__ = ("op", "reason", "ret_msg", "topics")

    def __init__(self, op: str, ret_msg: str, topics: tuple[str, ...]) -> None:
        self.op = op
        self.reason = AUTH_FAILED if op == AUTH else SUBSCRIBE_FAILED
        self.ret_msg = ret_msg[:200]
        self.topics = topics


class AckTimeout:
    """No acknowledgement of ``waiting_for`` (``AuthAck``, ``SubscribeAck``) within ``timeout`` seconds."""

    __slots__ = ("timeout", "waiting_for")
    reason = ERROR

    def __init__(self, waiting_for: str, timeout: float) -> None:
        self.waiting_for = waiting_for
        self.timeout = timeout


class InvalidFrame:
    """A frame that could not be understood; ``first`` when its ``kind`` was not seen before."""

    __slots__ = ("detail", "first", "kind")

    def __init__(self, kind: str, detail: str, first: bool) -> None:
        self.kind = kind
        self.detail = detail
        self.first = first


class ConnectionLost:
    """The connection failed or was closed under the stream (``reason``: closed, error, redirect).

    ``error_type``/``error`` describe it (never a credential); ``status`` is a refused
    redirect's HTTP status; ``unexpected`` is an exception the shell did not foresee (a bug),
    kept for its traceback."""

    __slots__ = ("error", "error_type", "reason", "status", "unexpected")

    def __init__(
        self,
        reason: str,
        error_type: str,
        error: str,
        *,
        status: int | None = None,
        unexpected: BaseException | None = None,
    ) -> None:
        self.reason = reason
        self.error_type = error_type
        self.error = error if len(error) <= 200 else error[:200] + "..."
        self.status = status
        self.unexpected = unexpected


class BudgetWait:
    """The per-host connection budget holds the next opening back for ``wait`` seconds."""

    __slots__ = ("host", "wait")

    def __init__(self, host: str, wait: float) -> None:
        self.host = host
        self.wait = wait


class Reconnect:
    """The stream waits ``delay`` seconds, then opens a new connection; ``reason`` is why the last ended."""

    __slots__ = ("delay", "reason")

    def __init__(self, reason: str, delay: float) -> None:
        self.reason = reason
        self.delay = delay


class CallbackFailed:
    """An owner's callback (``on_orders``, ``on_reconnected``, or the heartbeat itself) raised ``error``."""

    __slots__ = ("error", "what")

    def __init__(self, what: str, error: BaseException) -> None:
        self.what = what
        self.error = error


Event = (
    Started
    | Connected
    | Disconnected
    | PongResult
    | PongTimeout
    | Refused
    | AckTimeout
    | InvalidFrame
    | ConnectionLost
    | BudgetWait
    | Reconnect
    | CallbackFailed
    | msg.OrderPush
)


# ---- the session ----------------------------------------------------------------------------


class StreamSession:
    """The state of one account's private stream across its connections (see the module docstring)."""

    def __init__(
        self,
        api_key: str,
        api_secret: Secret,
        topics: Sequence[str],
        *,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        ping_phase: float = 0.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        auth_backoff_base: float = 10.0,
        auth_backoff_cap: float = 300.0,
        handshake_timeout: float = 10.0,
        auth_expiry: float = 5.0,
        timeframe: TimeFrame | None = None,
        rng: random.Random,
    ) -> None:
        self._api_key = api_key
        self._secret = api_secret
        self.topics = tuple(topics)
        self.products = tuple(TOPIC_PRODUCT[t] for t in self.topics if t in TOPIC_PRODUCT)
        self.heartbeat = Heartbeat(ping_interval, pong_timeout, ping_phase)
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.auth_backoff_base, self.auth_backoff_cap = auth_backoff_base, auth_backoff_cap
        self.handshake_timeout = handshake_timeout
        self.auth_expiry = auth_expiry
        # The account's one offset to Bybit's clock (shared with its REST client and backfill).
        self.timeframe = timeframe if timeframe is not None else TimeFrame()
        self._time_doubted = False  # an auth was refused: read Bybit's time before the next
        self.rng = rng
        self._req_ids = msg.ReqIds(f"{rng.getrandbits(32):08x}")
        self.state = CLOSED
        self.attempt = 0  # consecutive unhealthy connections (drives the backoff)
        self.auth_attempt = 0  # consecutive auth failures
        self.started_at: float | None = None
        self.down_since: float | None = None
        self.last_frame_at: float | None = None  # wall time of the last frame read while live
        self.ack_deadline: float | None = None  # monotonic; while waiting for an acknowledgement
        self._ever_connected = False
        self._pong_seen = False  # on this connection: it was healthy
        self._logged_kinds: set[str] = set()
        self._pending_req: str | None = None  # the auth or subscribe request being waited for
        self._ping_req = ""

    # ---- the stream as a whole

    @property
    def live(self) -> bool:
        return self.state == LIVE

    def start(self, wall: float) -> Started:
        self.started_at = wall
        return Started(wall, self.last_pong_or_start)

    def last_pong_or_start(self) -> float | None:
        last = self.heartbeat.last_pong
        return last if last is not None else self.started_at

    def needs_time(self) -> bool:
        """Read Bybit's server time before the next connection: none was read yet (a host clock
        seconds behind would have every auth refused, and a pong needs an authenticated stream),
        or the last auth was refused (the clock may have moved since)."""
        return not self.timeframe.known or self._time_doubted

    def time_read(self) -> None:
        """The shell read Bybit's server time (or tried to): do not ask again until the next refusal."""
        self._time_doubted = False

    # ---- one connection

    def opened(self, now: float, wall: float) -> str:
        """The socket is open: the ``auth`` frame to send, its signature expiring ``auth_expiry``
        seconds past Bybit's now as the time frame knows it (never further: see :mod:`.timeframe`)."""
        self._pong_seen = False
        self.state = AUTH
        req = self._pending_req = self._req_ids.next("auth")
        expires_ms = int((self.timeframe.bybit(wall) + self.auth_expiry) * 1000)
        self.ack_deadline = now + self.handshake_timeout
        return msg.auth_frame(req, ws_auth_args(self._api_key, self._secret, expires_ms))

    def receive(self, frame: msg.Frame, arrived: float, wall: float) -> Event | str | None:
        """One parsed frame, read off the socket at ``arrived`` (monotonic); ``wall`` is now.

        Returns a frame to send (text), an event, or None."""
        if self.state == LIVE:
            self.last_frame_at = wall
            if type(frame) is msg.Pong:
                return self._pong(frame, arrived, wall)
        elif self.state == AUTH and type(frame) is msg.AuthAck and frame.req_id in (None, self._pending_req):
            if not frame.success:
                return self._refused(AUTH, frame.ret_msg)
            self.auth_attempt = 0
            self.state = SUBSCRIBE
            req = self._pending_req = self._req_ids.next("subscribe")
            self.ack_deadline = arrived + self.handshake_timeout
            return msg.subscribe_frame(req, self.topics)
        elif self.state == SUBSCRIBE and type(frame) is msg.SubscribeAck and frame.req_id in (None, self._pending_req):
            if not frame.success:
                return self._refused(SUBSCRIBE, frame.ret_msg)
            return self._connected(arrived, wall)
        if type(frame) is msg.Pong:
            return self._pong(frame, arrived, wall)
        if type(frame) is msg.OrderPush:
            return frame
        if type(frame) is msg.Invalid:
            return self._invalid(frame.kind, frame.detail)
        return self._invalid(f"unexpected_{type(frame).__name__}", "")

    def ack_overdue(self, now: float) -> AckTimeout | None:
        """While waiting for an acknowledgement: the timeout, once its deadline has passed."""
        if self.state not in (AUTH, SUBSCRIBE) or self.ack_deadline is None or now < self.ack_deadline:
            return None
        waiting_for = "AuthAck" if self.state == AUTH else "SubscribeAck"
        self.state = CLOSED
        self.ack_deadline = None
        return AckTimeout(waiting_for, self.handshake_timeout)

    def disconnected(self, wall: float) -> Disconnected:
        """The connection is over (however it ended). Its pings can never be answered."""
        if self.state == LIVE:
            # Anything pushed after the last frame we read may be lost: that is the gap.
            self.down_since = self.last_frame_at if self.last_frame_at is not None else wall
        self.state = CLOSED
        self.ack_deadline = None
        self.heartbeat.on_disconnected()
        return Disconnected(self.products)

    def reconnect(self, reason: str) -> Reconnect:
        """How long to wait before the next connection, given why the last one ended.

        A connection that saw a pong was healthy: the backoff starts afresh. A refused auth
        waits longer (equal jitter from ``auth_backoff_base``): credentials rarely fix themselves."""
        if self._pong_seen:
            self.attempt = 0
            self._pong_seen = False
        if reason == AUTH_FAILED:
            delay = backoff_delay(
                self.auth_attempt, self.auth_backoff_base, self.auth_backoff_cap, self.rng, floor=EQUAL_JITTER
            )
            self.auth_attempt += 1
        else:
            delay = backoff_delay(self.attempt, self.backoff_base, self.backoff_cap, self.rng)
        self.attempt += 1
        return Reconnect(reason, delay)

    # ---- the heartbeat (the shell's heartbeat task asks these, in this order)

    def beat(self, now: float) -> PingDue | PongTimeout | None:
        """What the heartbeat must do at ``now``: give up, ping, or (None) sleep until :meth:`next_ping`."""
        overdue = self.pong_overdue(now)
        if overdue is not None:
            return overdue
        return PING_DUE if self.heartbeat.ping_due(now) else None

    def ping_frame(self) -> str:
        """The ping to send now; :meth:`ping_written` once the socket has it."""
        req = self._ping_req = self._req_ids.next("ping")
        return msg.ping_frame(req)

    def ping_written(self, now: float) -> None:
        self.heartbeat.on_ping_sent(self._ping_req, now)

    def next_ping(self) -> float:
        """When the heartbeat task must look again: the next ping on the account's grid."""
        due = self.heartbeat.next_ping
        assert due is not None  # live: a ping is always scheduled
        return due

    def pong_deadline(self) -> float | None:
        """When the pong watch must look (the oldest unanswered ping's timeout); None: nothing to watch.

        The shell keeps one timer for it beside the heartbeat task's sleep, disarmed by the pong
        that answers: the task then wakes once per ping, not a second time at every pong's
        deadline to find it answered."""
        return self.heartbeat.pong_deadline()

    def pong_overdue(self, now: float) -> PongTimeout | None:
        """The pong watch's question at its deadline: the timeout, or None (answered, or not yet due)."""
        hb = self.heartbeat
        return PongTimeout(hb.pong_timeout) if hb.timed_out(now) else None

    # ---- internals

    def _connected(self, now: float, wall: float) -> Connected:
        self.state = LIVE
        self.ack_deadline = None
        self.last_frame_at = wall
        self.heartbeat.on_connected(now)
        down_since = None
        if self._ever_connected:
            down_since = self.down_since if self.down_since is not None else wall
        self._ever_connected = True
        return Connected(wall, down_since, self.topics, self.products)

    def _pong(self, frame: msg.Pong, arrived: float, wall: float) -> PongResult:
        """A pong: the heartbeat's bookkeeping, and its skew offered to the time frame, which
        takes it only within its bound of Bybit's server time."""
        res = self.heartbeat.on_pong(frame.req_id, arrived, frame.server_ms, wall=wall)
        if res.rtt is not None:
            self._pong_seen = True
        if res.skew is not None:
            self.timeframe.pong(res.skew)
        return res

    def _refused(self, op: str, ret_msg: str) -> Refused:
        if op == AUTH:
            self._time_doubted = True
        self.state = CLOSED
        self.ack_deadline = None
        return Refused(op, ret_msg, self.topics)

    def _invalid(self, kind: str, detail: str) -> InvalidFrame:
        first = kind not in self._logged_kinds
        if first:
            self._logged_kinds.add(kind)
        return InvalidFrame(kind, detail, first)
