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
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any


class Clock:
    """The real clock. Subclass it (or duck-type it) to control time in tests."""

    def time(self) -> float:
        """Unix time in seconds."""
        return _time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        return _time.monotonic()

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """``asyncio.sleep`` itself, not a coroutine awaiting it: every sleeping task (a poller
        between polls, a heartbeat between pings) would hold one more frame, 0.25 KB each."""
        return asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """Raise ``TimeoutError`` in the block after ``seconds`` (None: never).

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
        cancellation that arrives together with a result, and a task would never stop.
        """
        return asyncio.timeout(seconds)


SYSTEM_CLOCK = Clock()
