"""The fleet keeps its memory small: it hands the heap's free pages back once start-up is over,
then every few minutes, and its REST pool shares its connections among the hosts."""

from __future__ import annotations

import aiohttp
import pytest
from virtual_clock import VirtualClock, settle

from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor import fleet as fleet_module
from exporter.monitor.fleet import (
    CONNECTION_POOL_SIZE,
    GIVE_BACK_EVERY_SECONDS,
    SETTLE_LIMIT_SECONDS,
    SETTLE_SECONDS,
    Fleet,
)
from exporter.secrets import Secret


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


def account(name: str, rest_url: str) -> AccountConfig:
    return AccountConfig(
        name=name,
        api_key="key",
        api_secret=Secret("secret"),
        environment="simulator",
        rest_url=rest_url,
        ws_url="ws://127.0.0.1:1/v5/private",
    )


@pytest.mark.parametrize(
    "urls, share",
    [
        (["https://api.bybit.com"] * 3, CONNECTION_POOL_SIZE),  # one host (Bybit's): all of them
        (["http://127.0.0.1:1", "http://127.0.0.1:2", "https://127.0.0.1:1", "http://127.0.0.1:1"], 33),
    ],
)
async def test_the_rest_pool_gives_each_host_an_equal_share(monkeypatch, urls, share):
    """Each host gets its share, so a start-up burst across hosts waits for a host's own
    connections instead of opening more while another's sit idle (a TLS handshake's memory
    stays resident)."""
    made: list[dict] = []
    monkeypatch.setattr(fleet_module, "Pool", lambda **kwargs: made.append(kwargs))
    config = Config(accounts=[account(f"a{i}", url) for i, url in enumerate(urls)])
    async with aiohttp.ClientSession() as session:
        fleet_module.rest_pool(config, Metrics(), session)
    assert made[0]["limit"] == CONNECTION_POOL_SIZE and made[0]["limit_per_host"] == share
