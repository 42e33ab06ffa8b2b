"""The tests' one virtual clock: time moves only when a test says so.

It serves the exporter's injected :class:`Clock` and the simulator's (both ask ``time()`` and
``sleep()``). Sleeps and timeouts taken on it wait for :meth:`VirtualClock.advance`, so a test
can run a 10 s pong timeout or a 60 s backoff in no wall time at all, while sockets stay real.
With ``auto_advance`` a sleep moves time on by itself at once (for code whose waits are the
result to check, not something to sit out), and :meth:`jump` moves time without firing anything.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from types import TracebackType

from exporter.runtime.clock import Clock


class VirtualClock(Clock):
    """Monotonic time starts at 0; wall time starts at ``wall_at_zero`` (default: the real time
    now, so that signatures and auth expiries still make sense to a server)."""

    def __init__(self, wall_at_zero: float | None = None, *, auto_advance: bool = False) -> None:
        self._now = 0.0
        self._auto = auto_advance
        self._wall_at_zero = time.time() if wall_at_zero is None else wall_at_zero
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self.sleeps: list[float] = []  # every sleep asked for, in order

    def time(self) -> float:
        return self._wall_at_zero + self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0 or self._auto:  # as asyncio.sleep(0): a turn of the loop, no deadline
            self._now += max(seconds, 0.0)
            await asyncio.sleep(0)
            return
        done = asyncio.get_running_loop().create_future()
        entry = self._call_at(self._now + max(seconds, 0.0), lambda: done.done() or done.set_result(None))
        try:
            await done
        except asyncio.CancelledError:
            self._cancel(entry)  # as asyncio.sleep cancels its timer: a cancelled sleep is no deadline
            raise

    def call_at(self, when: float, callback: Callable[[], object]) -> _VirtualAlarm:
        """``callback()`` when the clock is moved to ``when`` (at once, on the next move, if that has passed)."""
        return _VirtualAlarm(self, self._call_at(max(when, self._now), callback))

    def timeout(self, seconds: float | None) -> _VirtualTimeout:
        return _VirtualTimeout(self, seconds)

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` at once, firing nothing (a wall clock that stepped, or
        time that passed while nothing of the code under test slept)."""
        self._now += seconds

    def deadlines(self) -> list[float]:
        """When the pending sleeps and timeouts are due, soonest first."""
        return sorted(at for at, _, _ in self._timers)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing each sleep and timeout that falls due, in order."""
        await self.advance_to(self._now + seconds)

    async def advance_to(self, target: float) -> None:
        """Move monotonic time to ``target`` (never back), firing what falls due on the way."""
        target = max(target, self._now)
        while True:
            await settle()
            if not self._timers or self._timers[0][0] > target:
                break
            at, _, fire = heapq.heappop(self._timers)
            self._now = max(self._now, at)
            fire()
        self._now = target
        await settle()

    def _call_at(self, at: float, fire: Callable[[], object]) -> tuple[float, int, Callable[[], object]]:
        entry = (at, next(self._order), fire)
        heapq.heappush(self._timers, entry)
        return entry

    def _cancel(self, entry: tuple[float, int, Callable[[], object]]) -> None:
        if entry in self._timers:
            self._timers.remove(entry)
            heapq.heapify(self._timers)


class _VirtualAlarm:
    """What :meth:`VirtualClock.call_at` returns: cancelled, it is no deadline any more."""

    def __init__(self, clock: VirtualClock, entry: tuple[float, int, Callable[[], object]]) -> None:
        self._clock = clock
        self._entry = entry

    def cancel(self) -> None:
        self._clock._cancel(self._entry)


class _VirtualTimeout:
    """``asyncio.timeout`` whose deadline is on the virtual clock."""

    def __init__(self, clock: VirtualClock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self._inner = asyncio.timeout(None)
        self._entry: tuple[float, int, Callable[[], object]] | None = None
        self._inside = False

    async def __aenter__(self) -> _VirtualTimeout:
        await self._inner.__aenter__()
        self._inside = True
        if self._seconds is not None:
            self._entry = self._clock._call_at(self._clock.monotonic() + max(self._seconds, 0.0), self._expire)
            if self._seconds <= 0:
                self._expire()
        return self

    def _expire(self) -> None:
        if self._inside:
            self._inner.reschedule(asyncio.get_running_loop().time())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._inside = False
        if self._entry is not None:
            self._clock._cancel(self._entry)
        return await self._inner.__aexit__(exc_type, exc, tb)


async def settle(rounds: int = 50) -> None:
    """Let every task that can run without I/O run (a few dozen turns of the loop)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def run_until(
    clock: VirtualClock, cond: Callable[[], object], what: str, step: float = 0.05, limit: float = 60.0
) -> None:
    """Move ``clock`` on in steps of ``step`` until ``cond()``, giving the tasks and the (real)
    sockets their turn after each: for a test whose waits are on the clock and whose I/O is not."""
    deadline = clock.monotonic() + limit
    while not cond():
        assert clock.monotonic() < deadline, f"no {what} within {limit:g} virtual seconds"
        await clock.advance(step)
        await asyncio.sleep(0.001)
