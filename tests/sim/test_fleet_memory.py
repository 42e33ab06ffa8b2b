"""The fleet hands the heap's free pages back once start-up is over, then every few minutes."""

from __future__ import annotations

from virtual_clock import VirtualClock, settle

from exporter.config import Config
from exporter.metrics import Metrics
from exporter.monitor import fleet as fleet_module
from exporter.monitor.fleet import GIVE_BACK_EVERY_SECONDS, SETTLE_LIMIT_SECONDS, SETTLE_SECONDS, Fleet


async def run_for(clock: VirtualClock, seconds: float) -> None:
    for _ in range(int(seconds)):
        await clock.advance(1.0)
        await settle()


async def test_memory_goes_back_after_start_up_settles_then_every_few_minutes(monkeypatch):
    calls: list[float] = []
    clock = VirtualClock()
    monkeypatch.setattr(fleet_module, "give_back", lambda: calls.append(clock.monotonic()) or True)
    fleet = Fleet(Config(accounts=[]), Metrics(), clock=clock)  # no accounts: ready at once
    await fleet.start()
    try:
        await run_for(clock, SETTLE_SECONDS - 1)
        assert calls == []  # not in the middle of start-up
        await run_for(clock, 1)
        assert calls == [SETTLE_SECONDS]
        await run_for(clock, 2 * GIVE_BACK_EVERY_SECONDS)
        assert calls == [SETTLE_SECONDS + i * GIVE_BACK_EVERY_SECONDS for i in range(3)]
    finally:
        await fleet.stop()


async def test_an_account_that_never_polls_delays_it_only_up_to_the_limit(monkeypatch):
    calls: list[float] = []
    clock = VirtualClock()
    monkeypatch.setattr(fleet_module, "give_back", lambda: calls.append(clock.monotonic()) or True)
    fleet = Fleet(Config(accounts=[]), Metrics(), clock=clock)
    monkeypatch.setattr(Fleet, "ready", property(lambda self: False))
    await fleet.start()
    try:
        await run_for(clock, SETTLE_LIMIT_SECONDS + SETTLE_SECONDS)
        assert calls == [SETTLE_LIMIT_SECONDS + SETTLE_SECONDS]
    finally:
        await fleet.stop()
