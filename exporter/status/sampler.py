"""A small memory per account, fed a snapshot every few seconds (pure: snapshots and time in).

Per account: the largest ping gap and the mean RTT of each sampling interval over the last 15
minutes (fixed-size float rings, about 3 KB), the RTT histogram every minute for 5 minutes
(for p50/p90/p99 over that window, not since start), the reconnect count every minute for an
hour, and the events. Across accounts: the last 200 events. The service samples on the
event loop while a page renders in a worker thread, so reading and writing take a lock.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..metrics import specs
from . import thresholds
from .events import Event, LastTrigger, Watch, advance
from .snapshot import Snapshot

HISTORY_SECONDS = 15 * 60
# The RTT quantiles and the reconnect count over the alerts' own ranges (mixin/config.libsonnet).
RTT_WINDOW_SECONDS = thresholds.HEARTBEAT_RTT_WINDOW_SECONDS
FLAPPING_WINDOW_SECONDS = thresholds.RECONNECT_FLAPPING_WINDOW_SECONDS
RTT_MARK_EVERY = 60.0
RECONNECT_WINDOW_SECONDS = 3600
RECONNECT_MARK_EVERY = 60.0
EVENTS_KEPT = 200
ACCOUNT_EVENTS_KEPT = 50

Buckets = tuple[tuple[float, float], ...]


class Ring:
    """The last ``size`` floats, oldest first; NaN stands for "no value"."""

    def __init__(self, size: int, typecode: str = "d") -> None:
        self._values = array(typecode, [math.nan]) * size
        self._next = 0
        self._count = 0

    def append(self, value: float | None) -> None:
        self._values[self._next] = math.nan if value is None else value
        self._next = (self._next + 1) % len(self._values)
        self._count = min(self._count + 1, len(self._values))

    def last(self) -> float | None:
        return self._values[self._next - 1] if self._count else None

    def values(self) -> list[float]:
        if self._count < len(self._values):  # not wrapped yet
            return list(self._values[: self._count])
        return list(self._values[self._next :] + self._values[: self._next])


def largest_gap(
    gap_now: float | None,
    pongs: float,
    spent: float,
    bounds: tuple[float, ...],
    counts: Sequence[float],
    counts_before: Sequence[float],
) -> float | None:
    """The largest ping gap of one sampling interval, not the gap at the sample's instant.

    The gap is a sawtooth: it grows from 0 at each pong to about the ping interval at the next.
    A sample taken every 5 s of a stream that pings every 5 s lands at the same point of the
    tooth each time, so the instant's gap is flat (1.9 s where the teeth reach 5 s). Each tooth
    that ended in the interval was observed by ``bybit_dcp_ws_heartbeat_gap_seconds`` when its
    pong came: ``pongs`` of them, ``spent`` seconds together; the tooth still growing is
    ``gap_now``. With one pong in the interval (a ping interval at least the sample's, as with
    the defaults) its tooth is ``spent``, exact. With several, the largest is at least their
    mean and at least the lower bound of the highest bucket that one of them went into; that
    lower estimate is shown (a regular heartbeat gives it exactly, and it never draws a spike
    that was not there). Cheap: two subtractions and one pass over 13 buckets.
    """
    if pongs <= 0:
        return gap_now
    if pongs == 1:
        ended = spent
    else:  # cumulative counts: the highest bucket any of them went into is the first that holds them all
        before = counts_before if len(counts_before) == len(counts) else [0.0] * len(counts)
        top = next((i for i, (a, b) in enumerate(zip(counts, before, strict=True)) if a - b >= pongs), 0)
        ended = max(spent / pongs, bounds[top - 1] if top > 0 else 0.0)
    return ended if gap_now is None else max(gap_now, ended)


class Marks:
    """The last ``size`` (time, value) marks, as two arrays of doubles: a deque of tuples of
    floats took 112 bytes a mark, 7 KB per account once an hour of reconnect marks was full."""

    def __init__(self, size: int) -> None:
        self._times, self._values = Ring(size), Ring(size)

    def append(self, at: float, value: float) -> None:
        self._times.append(at)
        self._values.append(value)

    def last_at(self) -> float | None:
        return self._times.last()

    def latest_at_or_before(self, moment: float, default: float) -> float:
        """The value of the newest mark taken at ``moment`` or earlier; ``default`` without one."""
        for at, value in zip(reversed(self._times.values()), reversed(self._values.values()), strict=True):
            if at <= moment:
                return value
        return default


@dataclass(frozen=True)
class AccountView:
    """A copy of one account's memory, safe to read while sampling goes on."""

    times: list[float]
    gaps: list[float]
    rtts: list[float]
    rtt_buckets_before: Buckets  # the histogram about 5 minutes ago (empty: since the start)
    reconnects_before: float  # the reconnect count about an hour ago (0: since the start)
    flapping_before: float  # ... and about FLAPPING_WINDOW_SECONDS ago, as BybitDcpReconnectFlapping counts them
    watch: Watch
    events: list[Event]  # newest first


class History:
    """One account's recent past."""

    def __init__(self, size: int) -> None:
        # Gaps and RTTs are shown, not summed: single precision is plenty and halves their rings.
        self.times, self.gaps, self.rtts = Ring(size), Ring(size, "f"), Ring(size, "f")
        self.rtt_bounds: tuple[float, ...] = ()  # the same tuple for every account
        self.gap_counts: array[float] = array("d")  # the heartbeat-gap histogram at the last sample
        # The counts as doubles in an array: a tuple of float objects took three times the room.
        self.rtt_marks: deque[tuple[float, array[float]]] = deque(maxlen=int(RTT_WINDOW_SECONDS / RTT_MARK_EVERY) + 2)
        self.reconnect_marks = Marks(int(RECONNECT_WINDOW_SECONDS / RECONNECT_MARK_EVERY) + 2)
        self.watch = Watch()
        self.events: deque[Event] = deque(maxlen=ACCOUNT_EVENTS_KEPT)

    def record(self, snap: Snapshot, at: float) -> list[Event]:
        before = self.watch.previous
        count = snap.get(specs.WS_RTT.count_sample) or 0.0
        total = snap.get(specs.WS_RTT.sum_sample) or 0.0
        pongs = count - ((before.get(specs.WS_RTT.count_sample) or 0.0) if before else 0.0)
        spent = total - ((before.get(specs.WS_RTT.sum_sample) or 0.0) if before else 0.0)
        gap_count = snap.get(specs.WS_HEARTBEAT_GAP.count_sample) or 0.0
        gap_sum = snap.get(specs.WS_HEARTBEAT_GAP.sum_sample) or 0.0
        gap_pongs = gap_count - ((before.get(specs.WS_HEARTBEAT_GAP.count_sample) or 0.0) if before else 0.0)
        gap_spent = gap_sum - ((before.get(specs.WS_HEARTBEAT_GAP.sum_sample) or 0.0) if before else 0.0)
        gap = largest_gap(
            snap.get(specs.PING_GAP.sample),
            gap_pongs,
            gap_spent,
            snap.gap_bounds,
            snap.gap_counts,
            self.gap_counts,
        )
        self.gap_counts = array("d", snap.gap_counts)
        self.times.append(at)
        self.gaps.append(gap)
        self.rtts.append(spent / pongs if pongs > 0 else None)
        if not self.rtt_marks or at - self.rtt_marks[-1][0] >= RTT_MARK_EVERY:
            self.rtt_marks.append((at, array("d", snap.rtt_counts)))
            self.rtt_bounds = snap.rtt_bounds or self.rtt_bounds
        reconnects = sum(snap.by(specs.WS_RECONNECTS.sample).values())
        last = self.reconnect_marks.last_at()
        if last is None or at - last >= RECONNECT_MARK_EVERY:
            self.reconnect_marks.append(at, reconnects)
        events = advance(self.watch, snap, at)
        self.events.extend(events)
        return events

    def view(self, now: float) -> AccountView:
        counts = next((c for at, c in reversed(self.rtt_marks) if at <= now - RTT_WINDOW_SECONDS), array("d"))
        rtt_before = tuple(zip(self.rtt_bounds, counts, strict=False))
        reconnects_before = self.reconnect_marks.latest_at_or_before(now - RECONNECT_WINDOW_SECONDS, 0.0)
        flapping_before = self.reconnect_marks.latest_at_or_before(now - FLAPPING_WINDOW_SECONDS, 0.0)
        watch = self.watch
        last = watch.last_trigger
        copied = replace(watch, last_trigger=LastTrigger(dict(last.orders)) if last else None)
        return AccountView(
            self.times.values(),
            self.gaps.values(),
            self.rtts.values(),
            rtt_before,
            reconnects_before,
            flapping_before,
            copied,
            _newest_first(self.events),
        )


class Sampler:
    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._size = max(2, math.ceil(HISTORY_SECONDS / interval) + 1)
        self._histories: dict[str, History] = {}
        self._events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._lock = threading.Lock()

    def record(self, snapshots: Mapping[str, Snapshot], at: float) -> list[Event]:
        """Record one sample of every account; the events it brought, in order."""
        events: list[Event] = []
        with self._lock:
            for account, snap in snapshots.items():
                history = self._histories.get(account)
                if history is None:
                    history = self._histories[account] = History(self._size)
                events.extend(history.record(snap, at))
            self._events.extend(events)
        return events

    def view(self, account: str, now: float) -> AccountView | None:
        with self._lock:
            history = self._histories.get(account)
            return history.view(now) if history is not None else None

    def events(self, account: str | None = None) -> list[Event]:
        """The last events across accounts (or of one account), newest first."""
        with self._lock:
            if account is None:
                return _newest_first(self._events)
            history = self._histories.get(account)
            return _newest_first(history.events) if history is not None else []


def _newest_first(events: deque[Event]) -> list[Event]:
    """By each event's own time (a trigger is dated by Bybit, a few seconds before the sample
    that saw it; one found by the backfill, earlier still); one sample's events in reverse."""
    return sorted(reversed(events), key=lambda e: e.at, reverse=True)
