"""The exporter's share of Bybit's websocket connection budget, spent as fast as Bybit's rule allows (pure).

Bybit allows 500 new websocket connections per 5 minutes per host, counted against the IP,
so a desk's own bots on the same IP draw on the same 500. ``--bybit.connection-share``
gives the exporter a share of it: at 0.6 it opens at most 300 per 5 minutes and leaves
200 to the bots.

Within its share L = floor(500 * share) the exporter follows the rule itself: at most L
openings in any window of 300 s (and :data:`MARGIN`, as Bybit sees each opening a little
later than it is sent); of those, :data:`BURST` may go at once and the rest at :data:`PACE`
a second, so a cold start's TLS handshakes never take the loop for long. N accounts on one
host are all allowed to connect after ``floor((N - 1) / L) * 305 + max(0, (N - 1) mod L -
(BURST - 1)) / PACE`` seconds (:func:`cold_start_seconds`): 1,000 accounts take 321 s at the
full share (100 at once, 400 more in 16 s, the next 500 the same way five minutes after the
first). A token bucket that keeps a fifth of the limit for bursts needs 675 s for the same
1,000; no schedule within the rule can be done before 300 s.
"""

from __future__ import annotations

import math
from collections import deque

from .pacing import ConnectionBudget

BYBIT_LIMIT = 500  # new connections per host ...
BYBIT_PERIOD = 300.0  # ... per 5 minutes
MARGIN = 5.0  # seconds added to the window: an opening reaches Bybit a little after it is sent
BURST = 100  # openings at once, then ...
PACE = 25.0  # ... this many a second


class WindowBudget(ConnectionBudget):
    """At most ``limit`` openings per host in any ``period`` seconds; ``burst`` at once, then ``pace`` a second.

    Grants are first come, first served: each :meth:`reserve` gets the earliest moment that
    keeps both limits, given every opening granted before it.
    """

    def __init__(
        self, limit: int = BYBIT_LIMIT, period: float = BYBIT_PERIOD + MARGIN, burst: int = BURST, pace: float = PACE
    ) -> None:
        if limit < 1 or period <= 0 or burst < 1 or pace <= 0:
            raise ValueError("need limit >= 1, period > 0, burst >= 1 and pace > 0")
        self.limit, self.period, self.burst, self.pace = limit, period, float(min(burst, limit)), pace
        # host -> the last `limit` opening times (oldest first), and the pace's tokens at the last one
        self._granted: dict[str, deque[float]] = {}
        self._tokens: dict[str, float] = {}

    def reserve(self, host: str, now: float) -> float:
        granted = self._granted.setdefault(host, deque(maxlen=self.limit))
        tokens = self._tokens.get(host, self.burst)
        at = now
        if granted:
            at = max(at, granted[-1])
            tokens = min(self.burst, tokens + (at - granted[-1]) * self.pace)
        if len(granted) == self.limit:  # the window since the oldest of the last `limit` is full
            window_end = granted[0] + self.period
            if window_end > at:
                tokens = min(self.burst, tokens + (window_end - at) * self.pace)
                at = window_end
        if tokens < 1.0:
            at += (1.0 - tokens) / self.pace
            tokens = 1.0
        granted.append(at)
        self._tokens[host] = tokens - 1.0
        return at - now


def shared_budget(share: float) -> WindowBudget:
    """The budget for ``share`` (0 < share <= 1) of Bybit's 500 connections per 5 minutes."""
    if not 0 < share <= 1:
        raise ValueError(f"--bybit.connection-share must be in (0, 1], not {share}")
    limit = math.floor(BYBIT_LIMIT * share)
    if limit < 1:
        raise ValueError(f"--bybit.connection-share {share} leaves no connection at all")
    return WindowBudget(limit)


def cold_start_seconds(accounts: int, share: float = 1.0) -> float:
    """Seconds until ``accounts`` streams on one host have all been allowed to open."""
    if accounts <= 0:
        return 0.0
    limit = shared_budget(share).limit
    windows, rest = divmod(accounts - 1, limit)
    return windows * (BYBIT_PERIOD + MARGIN) + max(0, rest - (min(BURST, limit) - 1)) / PACE
