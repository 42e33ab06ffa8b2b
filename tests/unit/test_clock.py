"""The real clock's alarm: on the clock's own monotonic scale, and a cancelled one never rings."""

from __future__ import annotations

import asyncio

from exporter.runtime.clock import Clock


class AheadClock(Clock):
    """A monotonic scale an hour ahead of the system's (as a subclass may keep one)."""

    def monotonic(self) -> float:
        return super().monotonic() + 3600.0


async def test_an_alarm_rings_at_its_moment_on_the_clocks_own_scale():
    clock = AheadClock()
    rang: list[float] = []
    due = clock.monotonic() + 0.05
    clock.call_at(due, lambda: rang.append(clock.monotonic()))
    await asyncio.sleep(0.01)
    assert rang == []  # not an hour early, nor at once
    for _ in range(200):
        if rang:
            break
        await asyncio.sleep(0.01)
    assert len(rang) == 1 and rang[0] >= due - 0.005  # the loop's timers may ring within its resolution


async def test_a_cancelled_alarm_never_rings():
    clock = Clock()
    rang: list[str] = []
    alarm = clock.call_at(clock.monotonic() + 0.02, lambda: rang.append("rang"))
    kept = clock.call_at(clock.monotonic() + 0.04, lambda: rang.append("kept"))
    alarm.cancel()
    for _ in range(200):
        if rang:
            break
        await asyncio.sleep(0.01)
    assert rang == ["kept"]
    kept.cancel()  # already rung: nothing happens
