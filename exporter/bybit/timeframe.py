"""One time frame per account: Bybit's clock minus ours, learned from Bybit (pure bookkeeping).

Everything the exporter sends to Bybit or compares with Bybit's times is in Bybit's time: the
REST ``X-BAPI-TIMESTAMP`` (Bybit accepts ``server_time - recv_window <= timestamp <
server_time + 1000``), the websocket ``auth`` frame's ``expires``, and the backfill's history
window and filters. A host clock that is off must not change any of them, so one
:class:`TimeFrame` per account holds the one offset they all add to the local wall clock; the
account's REST client, stream and backfill share it (wired in
:func:`exporter.monitor.parts.build_parts`).

Where the offset comes from, and why the bound:

- Bybit's server time (``GET /v5/market/time``), read when the stream starts (before its first
  ``auth``) and again after a 10002: this is Bybit's own answer on the API host, the anchor.
- A pong's ``args[0]`` (Bybit's clock in ms) may refine the offset, but only within
  :data:`MAX_CLOCK_SKEW_SECONDS` of the anchor. Nothing checks that number, and the auth expiry
  follows the offset: a pong claiming the year 2096 once made every later ``auth`` frame valid
  for 70 years, so anyone who saw one frame could authenticate as the key for decades.
- A server-time reading is refused too when it claims Bybit's clock is more than
  :data:`MAX_SERVER_TIME_SKEW_SECONDS` from ours: no host keeps a clock a day off and still
  does TLS, so such an answer is not Bybit's time.

A refused reading is never applied: it is reported to ``on_refused(source, skew)`` (the
exporter counts it in ``bybit_dcp_clock_skew_refused_total`` and a warning alert fires), and
the offset stays what it was. Nothing here reads a clock: callers pass the local wall time.
"""

from __future__ import annotations

from collections.abc import Callable

from ..dcp import CLOCK_SOURCES

# A pong may move the offset at most this far from the last server-time reading (seconds).
MAX_CLOCK_SKEW_SECONDS = 300.0
# A server-time reading further than this from the local clock is refused (seconds).
MAX_SERVER_TIME_SKEW_SECONDS = 86_400.0

SERVER_TIME, PONG = CLOCK_SOURCES  # the sources: GET /v5/market/time (at start, after a 10002); a pong

OnRefused = Callable[[str, float], None]  # (source, skew seconds)


def _ignore(source: str, skew: float) -> None:
    return None


class TimeFrame:
    """Bybit's clock minus the local wall clock, in seconds, as best known (see the module docstring)."""

    def __init__(
        self,
        on_refused: OnRefused = _ignore,
        *,
        max_skew: float = MAX_CLOCK_SKEW_SECONDS,
        max_server_skew: float = MAX_SERVER_TIME_SKEW_SECONDS,
    ) -> None:
        self.on_refused = on_refused
        self.max_skew = max_skew
        self.max_server_skew = max_server_skew
        self.offset = 0.0  # added to the local wall clock to give Bybit's
        self.anchor = 0.0  # the offset the last server-time reading gave
        self.known = False  # a server-time reading has been applied

    def bybit(self, local_wall: float) -> float:
        """The local wall time ``local_wall`` in Bybit's time (unix seconds)."""
        return local_wall + self.offset

    def bybit_ms(self, local_wall: float) -> int:
        return int(self.bybit(local_wall) * 1000)

    def server_time(self, server: float, sent_at: float, received_at: float) -> bool:
        """Bybit said its time was ``server`` for a request sent at ``sent_at`` and answered at
        ``received_at`` (local wall): the anchor is its offset from the midpoint. False: refused."""
        skew = server - (sent_at + received_at) / 2
        if not abs(skew) <= self.max_server_skew:  # also refuses NaN
            self.on_refused(SERVER_TIME, skew)
            return False
        self.offset = self.anchor = skew
        self.known = True
        return True

    def pong(self, skew: float) -> bool:
        """A pong put Bybit's clock ``skew`` seconds ahead of ours: applied when within
        ``max_skew`` of the anchor. False: refused (the offset is unchanged)."""
        if not abs(skew - self.anchor) <= self.max_skew:
            self.on_refused(PONG, skew)
            return False
        self.offset = skew
        return True
