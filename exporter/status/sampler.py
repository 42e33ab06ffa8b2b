"""A small memory per account, fed a snapshot every few seconds (pure: snapshots and time in).

Per account: the ping gap and the mean RTT of each sampling interval over the last 15
minutes (fixed-size float rings, about 3 KB), the RTT histogram every minute for 5 minutes
(for p50/p99 over that window, not since start), the reconnect count every minute for an
hour, and the events. Across accounts: the last 200 events. The service samples on the
event loop while a page renders in a worker thread, so reading and writing take a lock.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..metrics import specs
from .events import Event, LastTrigger, Watch, advance
from .snapshot import Snapshot

HISTORY_SECONDS = 15 * 60
RTT_WINDOW_SECONDS = 5 * 60
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
    watch: Watch
    events: list[Event]  # newest first


class History:
    """One account's recent past."""

    def __init__(self, size: int) -> None:
        # Gaps and RTTs are shown, not summed: single precision is plenty and halves their rings.
        self.times, self.gaps, self.rtts = Ring(size), Ring(size, "f"), Ring(size, "f")
        self.rtt_bounds: tuple[float, ...] = ()  # the same tuple for every account
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
        self.times.append(at)
        self.gaps.append(snap.get(specs.PING_GAP.sample))
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
        watch = self.watch
        last = watch.last_trigger
        copied = replace(watch, last_trigger=LastTrigger(dict(last.orders)) if last else None)
        return AccountView(
            self.times.values(),
            self.gaps.values(),
            self.rtts.values(),
            rtt_before,
            reconnects_before,
            copied,
            list(reversed(self.events)),
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
                return list(reversed(self._events))
            history = self._histories.get(account)
            return list(reversed(history.events)) if history is not None else []
