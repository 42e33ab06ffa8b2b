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

    __slots__ = ("_count", "_next", "_values")

    def __init__(self, size: int, typecode: str = "d") -> None:
        self._values = array(typecode, [math.nan]) * size
        self._next = 0
        self._count = 0

    @property
    def size(self) -> int:
        return len(self._values)

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
    """(time, value) marks of a count taken every so often, kept only where the value changed:
    the newest mark at or before a moment has the value it had then either way, and most
    accounts never reconnect, so an hour of marks is one. At most ``size`` changes are kept,
    which reach back over the last ``size`` marks taken at least (as far as keeping every mark
    did), in two arrays of doubles: every mark of an hour was 1.4 KB per account, and as a
    deque of tuples 7 KB."""

    __slots__ = ("_last_at", "_size", "_times", "_values")

    def __init__(self, size: int) -> None:
        self._size = size
        self._times: array[float] = array("d")
        self._values: array[float] = array("d")
        self._last_at: float | None = None

    def append(self, at: float, value: float) -> None:
        self._last_at = at
        values = self._values
        if values and values[-1] == value:
            return
        if len(values) == self._size:
            del self._times[0], values[0]
        self._times.append(at)
        values.append(value)

    def last_at(self) -> float | None:
        return self._last_at

    def latest_at_or_before(self, moment: float, default: float) -> float:
        """The value of the newest mark taken at ``moment`` or earlier; ``default`` without one."""
        times = self._times
        for i in range(len(times) - 1, -1, -1):
            if times[i] <= moment:
                return self._values[i]
        return default


class CountMarks:
    """The last ``size`` (time, counts) marks of a cumulative histogram: the times in one array
    of doubles, the counts of every mark in another, a row of ``width`` per mark (the widest
    mark's), with each mark's own length beside. A deque of (time, array) tuples took about
    2.6 KB per account once its 7 marks were there; this, about 1 KB."""

    __slots__ = ("_count", "_counts", "_lengths", "_next", "_times", "_width")

    def __init__(self, size: int) -> None:
        self._times = array("d", [math.nan]) * size
        self._lengths = array("H", [0]) * size
        self._counts: array[float] = array("d")
        self._width = 0
        self._next = 0
        self._count = 0

    def append(self, at: float, counts: Sequence[float]) -> None:
        size, n = len(self._times), len(counts)
        if n > self._width:  # a wider mark (the first with buckets): lay the rows out anew
            wider = array("d", [0.0]) * (size * n)
            for slot, length in enumerate(self._lengths):
                wider[slot * n : slot * n + length] = self._counts[slot * self._width : slot * self._width + length]
            self._counts, self._width = wider, n
        slot = self._next
        self._times[slot], self._lengths[slot] = at, n
        self._counts[slot * self._width : slot * self._width + n] = array("d", counts)
        self._next = (slot + 1) % size
        self._count = min(self._count + 1, size)

    def last_at(self) -> float | None:
        return self._times[self._next - 1] if self._count else None

    def latest_at_or_before(self, moment: float) -> array[float]:
        """The counts of the newest mark taken at ``moment`` or earlier; empty without one."""
        size = len(self._times)
        for back in range(1, self._count + 1):
            slot = (self._next - back) % size
            if self._times[slot] <= moment:
                start = slot * self._width
                return self._counts[start : start + self._lengths[slot]]
        return array("d")


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


class SampleTimes:
    """The times of the sampler's samples, one ring for every account: each sample is taken of
    all accounts at once, so an account in every sample since its first has the same times as
    its neighbours (1.5 KB per account when each kept its own). An account left out of a sample
    gets a ring of its own (:meth:`History.own_times`), so its times stay its own."""

    __slots__ = ("ring", "taken")

    def __init__(self, size: int) -> None:
        self.ring = Ring(size)
        self.taken = 0  # samples so far

    def append(self, at: float) -> None:
        self.ring.append(at)
        self.taken += 1

    def last(self, n: int) -> list[float]:
        """The times of the last ``n`` samples (at most the ring's size), oldest first."""
        values = self.ring.values()
        return values[len(values) - n :] if n < len(values) else values


class History:
    """One account's recent past."""

    __slots__ = (
        "_events",
        "_first",
        "_own_times",
        "_shared_times",
        "gap_counts",
        "gaps",
        "reconnect_marks",
        "rtt_bounds",
        "rtt_marks",
        "rtts",
        "watch",
    )

    def __init__(self, size: int, times: SampleTimes | None = None) -> None:
        # Gaps and RTTs are shown, not summed: single precision is plenty and halves their rings.
        self.gaps, self.rtts = Ring(size, "f"), Ring(size, "f")
        # The sample times: the sampler's shared ring while this account is in every sample
        # (from sample ``_first`` on), else a ring of its own.
        self._shared_times = times
        self._first = times.taken if times is not None else 0  # made in the sample it first appears in
        self._own_times = Ring(size) if times is None else None
        self.rtt_bounds: tuple[float, ...] = ()  # the same tuple for every account
        self.gap_counts: array[float] = array("d")  # the heartbeat-gap histogram at the last sample
        self.rtt_marks = CountMarks(int(RTT_WINDOW_SECONDS / RTT_MARK_EVERY) + 2)
        self.reconnect_marks = Marks(int(RECONNECT_WINDOW_SECONDS / RECONNECT_MARK_EVERY) + 2)
        self.watch = Watch()
        self._events: deque[Event] | None = None  # made with the first event (most accounts have none)

    def own_times(self) -> Ring:
        """Give this account a ring of sample times of its own, from the shared one (it is about to
        miss a sample, or is asked for a ring to keep); before the sampler appends the next time."""
        if self._own_times is None:
            shared = self._shared_times
            assert shared is not None
            ring = Ring(shared.ring.size)
            for at in shared.last(shared.taken - self._first + 1):
                ring.append(at)
            self._own_times, self._shared_times = ring, None
        return self._own_times

    def time_values(self) -> list[float]:
        if self._own_times is not None:
            return self._own_times.values()
        assert self._shared_times is not None
        return self._shared_times.last(self._shared_times.taken - self._first + 1)

    @property
    def events(self) -> deque[Event] | tuple[()]:
        return self._events if self._events is not None else ()

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
        if self._own_times is not None:  # else the sampler appended it to the shared ring
            self._own_times.append(at)
        self.gaps.append(gap)
        self.rtts.append(spent / pongs if pongs > 0 else None)
        last_rtt = self.rtt_marks.last_at()
        if last_rtt is None or at - last_rtt >= RTT_MARK_EVERY:
            self.rtt_marks.append(at, snap.rtt_counts)
            self.rtt_bounds = snap.rtt_bounds or self.rtt_bounds
        reconnects = sum(snap.by(specs.WS_RECONNECTS.sample).values())
        last = self.reconnect_marks.last_at()
        if last is None or at - last >= RECONNECT_MARK_EVERY:
            self.reconnect_marks.append(at, reconnects)
        events = advance(self.watch, snap, at)
        if events:
            if self._events is None:
                self._events = deque(maxlen=ACCOUNT_EVENTS_KEPT)
            self._events.extend(events)
        return events

    def view(self, now: float) -> AccountView:
        counts = self.rtt_marks.latest_at_or_before(now - RTT_WINDOW_SECONDS)
        rtt_before = tuple(zip(self.rtt_bounds, counts, strict=False))
        reconnects_before = self.reconnect_marks.latest_at_or_before(now - RECONNECT_WINDOW_SECONDS, 0.0)
        flapping_before = self.reconnect_marks.latest_at_or_before(now - FLAPPING_WINDOW_SECONDS, 0.0)
        watch = self.watch
        last = watch.last_trigger
        copied = replace(watch, last_trigger=LastTrigger(dict(last.orders)) if last else None)
        return AccountView(
            self.time_values(),
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
        self._times = SampleTimes(self._size)
        self._histories: dict[str, History] = {}
        self._events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._lock = threading.Lock()

    def record(self, snapshots: Mapping[str, Snapshot], at: float) -> list[Event]:
        """Record one sample of every account; the events it brought, in order."""
        events: list[Event] = []
        with self._lock:
            for account, left_out in self._histories.items():
                if account not in snapshots:  # left out of this sample: its times become its own
                    left_out.own_times()
            self._times.append(at)
            for account, snap in snapshots.items():
                history = self._histories.get(account)
                if history is None:
                    history = self._histories[account] = History(self._size, self._times)
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


def _newest_first(events: Sequence[Event]) -> list[Event]:
    """By each event's own time (a trigger is dated by Bybit, a few seconds before the sample
    that saw it; one found by the backfill, earlier still); one sample's events in reverse."""
    return sorted(reversed(events), key=lambda e: e.at, reverse=True)
