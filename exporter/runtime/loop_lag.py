"""How late the event loop runs: ``bybit_dcp_exporter_event_loop_lag_seconds``.

Every pong and every REST answer waits for the loop before the exporter reads it, so a
busy loop (a slow callback, a garbage collection, a burst of work) shows in the RTT and
the REST duration as if Bybit were slow. A task that sleeps a fixed period on the fleet's
clock and records how much later than asked it woke makes that wait visible on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from .clock import Clock

LOOP_LAG_PERIOD = 0.25  # seconds between samples: 4 a second, negligible work


async def watch_loop_lag(clock: Clock, record: Callable[[float], object], period: float = LOOP_LAG_PERIOD) -> None:
    """Sample the loop's lag until cancelled, handing each sample to ``record`` (the fleet gives the
    histogram's ``observe``, so this room stays below the metrics)."""
    while True:
        asked = clock.monotonic() + period
        await clock.sleep(period)
        record(max(0.0, clock.monotonic() - asked))
