"""Heartbeat bookkeeping for the private stream (sans-I/O: the stream passes ``now`` in).

The stream tells a :class:`Heartbeat` what happened (connected, ping sent, pong received,
disconnected) and asks it what to do next (when the next ping is due, whether a pong is
overdue). Every method takes ``now`` so tests drive it with plain numbers.

``now`` is a monotonic clock: scheduling, timeouts, RTT and the gap between pongs must
not jump when the wall clock is stepped. :meth:`on_pong` also takes the wall time
(``wall``, default ``now``) for the two things that are wall-clock by nature: the time of
the last pong (a unix-time gauge) and the clock-skew estimate.

Why the pieces exist:
- The first ping goes at once on a new connection (it checks the connection and closes the
  heartbeat gap DCP cares about); the later ones go on the account's own grid,
  ``phase + k * interval`` (:func:`.pacing.next_slot`), so a fleet's pings are spread evenly
  over the interval and each account keeps its slot across reconnects.
- RTT is measured per ``req_id``: a pong answers one particular ping, so a late pong for
  an older ping never produces a bogus short RTT.
- The gap between consecutive pongs is kept across reconnects: the time DCP cares about
  is "how long was this account without a heartbeat", and a reconnect is exactly when
  that gap grows.
- ``args[0]`` of Bybit's pong is its clock in ms, so each pong also gives a clock-skew
  estimate (server time minus the local midpoint of the round trip).
"""

from __future__ import annotations

from .pacing import next_slot


class PongResult:
    """What one pong taught us. Fields are None when they cannot be known.

    The stream hands it on as it is, as its "pong seen" event (see :mod:`.session`). A plain
    class with ``__slots__``, not a frozen dataclass: one is made per ping per account, and a
    frozen dataclass sets each field through ``object.__setattr__`` (three times the cost).
    Nothing changes it after it is made; it compares and prints by its fields, as before."""

    __slots__ = ("gap", "matched", "rtt", "skew", "wall")

    def __init__(
        self,
        rtt: float | None,  # seconds from the matching ping to this pong
        gap: float | None,  # seconds since the previous pong (across reconnects)
        skew: float | None,  # server clock minus local clock, seconds
        matched: bool,  # the pong answered a ping we are waiting for
        wall: float | None = None,  # the wall time it was read (the last-pong gauge)
    ) -> None:
        self.rtt = rtt
        self.gap = gap
        self.skew = skew
        self.matched = matched
        self.wall = wall

    def _fields(self) -> tuple[float | bool | None, ...]:
        return (self.rtt, self.gap, self.skew, self.matched, self.wall)

    def __eq__(self, other: object) -> bool:
        if type(other) is not PongResult:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"PongResult(rtt={self.rtt!r}, gap={self.gap!r}, skew={self.skew!r}, "
            f"matched={self.matched!r}, wall={self.wall!r})"
        )


class Heartbeat:
    def __init__(self, ping_interval: float, pong_timeout: float, phase: float = 0.0) -> None:
        if ping_interval <= 0 or pong_timeout <= 0:
            raise ValueError("ping_interval and pong_timeout must be positive")
        if not 0 <= phase < ping_interval:
            raise ValueError("phase must be within [0, ping_interval)")
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.phase = phase  # this account's slot within the interval (see pacing.stable_phase)
        self.last_pong: float | None = None  # wall time; survives reconnects on purpose
        self._last_pong_at: float | None = None  # the same moment on the monotonic clock
        self.last_skew: float | None = None
        self._outstanding: dict[str, float] = {}  # req_id -> sent at; insertion order = send order
        self._next_ping: float | None = None  # None while disconnected

    # ---- connection lifecycle

    def on_connected(self, now: float) -> None:
        """The stream is subscribed: ping right away, then on the account's grid."""
        self._outstanding.clear()
        self._next_ping = now

    def on_disconnected(self) -> None:
        """Pings of a closed connection can never be answered; forget them."""
        self._outstanding.clear()
        self._next_ping = None

    @property
    def connected(self) -> bool:
        return self._next_ping is not None

    # ---- pinging

    def ping_due(self, now: float) -> bool:
        return self._next_ping is not None and now >= self._next_ping

    def on_ping_sent(self, req_id: str, now: float) -> None:
        self._outstanding[req_id] = now
        self._next_ping = next_slot(now, self.ping_interval, self.phase)

    @property
    def outstanding(self) -> dict[str, float]:
        return dict(self._outstanding)

    # ---- pongs

    def on_pong(
        self, req_id: str | None, now: float, server_ms: int | None = None, *, wall: float | None = None
    ) -> PongResult:
        wall = now if wall is None else wall
        outstanding = self._outstanding
        sent = outstanding.pop(req_id, None) if req_id is not None else None
        rtt: float | None = None
        skew: float | None = None
        if sent is not None:
            rtt = max(0.0, now - sent)
            # Pings answered out of order imply the older ones are lost; drop them so a
            # lost ping does not later count as a timeout on a healthy connection. (Mostly
            # none is left: the list is made only when one is.)
            if outstanding:
                for older, at in list(outstanding.items()):
                    if at <= sent:
                        del outstanding[older]
            if server_ms is not None:
                # Server time minus the local (wall) midpoint of the round trip.
                skew = server_ms / 1000.0 - (wall - (now - sent) / 2.0)
                self.last_skew = skew
        last = self._last_pong_at
        gap = None if last is None else max(0.0, now - last)
        self.last_pong = wall
        self._last_pong_at = now
        return PongResult(rtt, gap, skew, sent is not None, wall)

    # ---- timeouts

    def timed_out(self, now: float) -> bool:
        """True when the oldest unanswered ping has waited ``pong_timeout`` or longer."""
        oldest = self._oldest_outstanding()
        return oldest is not None and now >= oldest + self.pong_timeout  # same arithmetic as deadline()

    def deadline(self) -> float | None:
        """The next moment the stream must act (send a ping or declare a timeout)."""
        next_ping, due = self._next_ping, self.pong_deadline()
        if due is None:
            return next_ping
        return due if next_ping is None or due < next_ping else next_ping

    @property
    def next_ping(self) -> float | None:
        """When the next ping is due (None while disconnected)."""
        return self._next_ping

    def pong_deadline(self) -> float | None:
        """When the oldest unanswered ping times out; None when every ping has its pong."""
        oldest = self._oldest_outstanding()
        return None if oldest is None else oldest + self.pong_timeout  # same arithmetic as timed_out()

    def _oldest_outstanding(self) -> float | None:
        return min(self._outstanding.values()) if self._outstanding else None
