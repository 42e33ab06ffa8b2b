"""The simulator's source of time, injected so that tests and drills can replace it.

The shell (server, sessions, routes, scenario) asks a :class:`Clock`; the pure modules are
handed ``now`` instead and never look at a clock themselves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time: what the simulator uses unless it is given another clock."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def wait_event(clock: Clock, event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``clock`` has slept ``seconds``; True if the event was set.

    Built on asyncio.wait rather than wait_for, which on Python 3.11 can swallow a cancel that
    arrives as the event is set (a stop() would then wait for ever).
    """
    if event.is_set():
        return True
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(clock.sleep(max(seconds, 0.0)))]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return event.is_set()
