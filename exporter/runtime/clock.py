"""The one source of time: wall time, monotonic time, sleeping and timeouts.

The fleet creates one :class:`Clock` and hands it down to every supervisor, REST client,
stream and enforcer, so nothing below it reads the time or sleeps on its own. Tests hand
down a virtual clock instead and run timeouts and backoffs without waiting for them.

Wall time (``time``) is for what is wall-clock by nature: unix-time gauges, signatures,
auth expiry. Everything that schedules or measures (heartbeats, timeouts, RTT, backoff)
uses ``monotonic``, which never jumps when the system clock is stepped.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Alarm(Protocol):
    """What :meth:`Clock.call_at` returns (an ``asyncio.TimerHandle`` on the real clock)."""

    def cancel(self) -> None: ...


class Clock:
    """The real clock. Subclass it (or duck-type it) to control time in tests."""

    # The library functions themselves, not methods calling them: every stream reads the
    # clock three or four times and sleeps once per ping, and a wrapper's frame (a coroutine,
    # for the sleep) costs more than the read. A subclass overrides them as methods.

    #: Unix time in seconds.
    time = staticmethod(_time.time)
    #: Seconds on a clock that never goes back; only differences mean anything.
    monotonic = staticmethod(_time.monotonic)
    #: ``await clock.sleep(seconds)``: ``asyncio.sleep`` itself, so a sleeping task (a poller between
    #: polls, a heartbeat between pings) holds no frame of ours (0.25 KB each).
    sleep = staticmethod(asyncio.sleep)

    def call_at(self, when: float, callback: Callable[[], object]) -> Alarm:
        """Call ``callback`` (a plain function, on the event loop) once ``monotonic()`` reaches ``when``.

        For a deadline that is mostly called off before it comes (a pong's): cancelling the
        returned alarm costs no wake-up, where a task sleeping until it would wake to find nothing to do.
        """
        return asyncio.get_running_loop().call_later(when - self.monotonic(), callback)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """Raise ``TimeoutError`` in the block after ``seconds`` (None: never).

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
        cancellation that arrives together with a result, and a task would never stop.
        """
        return asyncio.timeout(seconds)


SYSTEM_CLOCK = Clock()
