"""The backfill finds a DCP cancel of an order created days ago under both readings of order
history's time filter (Bybit does not say whether startTime/endTime bound createdTime or
updatedTime), with history that shows changes late, and counts it once.

The whole exporter against the simulator over loopback, as in test_account.py.
"""

from __future__ import annotations

import time

import aiohttp
import pytest
from account_harness import KEY, TIME_SCALE, account, protected_client, running
from helpers import eventually, rest_client

from exporter.metrics import Metrics
from exporter.monitor.account import AccountSupervisor
from exporter.simulator import Simulator

DAYS = 24 * 3600


@pytest.fixture
async def sim():
    async with Simulator(time_scale=TIME_SCALE) as s:
        s.add_account(KEY)
        yield s


async def history_ids(sim: Simulator, start: float, end: float) -> set[str]:
    """What order history alone lists for linear orders in [start, end]."""
    async with aiohttp.ClientSession() as session:
        rest = rest_client(session, sim.rest_url, Metrics(), KEY, account(sim).api_secret, account="probe")
        orders, _ = await rest.order_history("linear", int(start * 1000), int(end * 1000))
    return {o["orderId"] for o in orders}


@pytest.mark.parametrize("delay", [0.0, 60.0], ids=["prompt", "delayed"])
@pytest.mark.parametrize("filter_by", ["updatedTime", "createdTime"])
async def test_an_old_order_cancelled_by_dcp_in_the_gap_is_found_once(sim, filter_by, delay):
    sim.set_history(filter_by=filter_by, delay=delay)
    async with running(account(sim, ping_interval=2.0, pong_timeout=1.0)) as r:
        sup = r.fleet.supervisors["a"]
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1)
        old = sim.place_order(KEY, category="linear", age=3 * DAYS)  # rested three days
        new = sim.place_order(KEY, category="linear")
        gap_start = time.time()
        async with protected_client(sim, KEY, "dcp.future"):
            sim.stall(KEY, True)  # our stream goes silent; the bot dies; DCP fires unseen
        await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 0

        # What history alone holds for the gap: the reading and the delay decide.
        listed = await history_ids(sim, gap_start - 10, time.time() + 1)
        if delay:
            assert listed == set()
        elif filter_by == "createdTime":
            assert listed == {new["orderId"]}  # the old order is created before the range
        else:
            assert listed == {old["orderId"], new["orderId"]}

        # Pong timeout -> reconnect -> backfill: both orders, one trigger, whatever history holds.
        await eventually(lambda: sup.backfill.gaps_read >= 1, timeout=15, what="the backfill after reconnecting")
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 2
        assert r.local("bybit_dcp_triggers_total", account="a", product="DERIVATIVES") == 1
        # Another backfill over the same orders (both sources list them again): counted once.
        sim.close_connections(KEY)
        await eventually(lambda: sup.backfill.gaps_read >= 2, timeout=15, what="a second backfill")
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 2
        assert r.local("bybit_dcp_triggers_total", account="a", product="DERIVATIVES") == 1


async def test_closed_orders_settled_before_the_gap_are_not_a_trigger_of_it(sim):
    """The recent closed orders go back past the gap: a DCP cancel from before it (yesterday's
    trigger, say) is no new trigger."""
    sim.place_order(KEY, category="linear")
    async with protected_client(sim, KEY, "dcp.future"):
        pass
    await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="an earlier trigger")
    async with aiohttp.ClientSession() as session:
        metrics = Metrics()
        metrics.add_account("a", environment="simulator", mode="observer")
        sup = AccountSupervisor(account(sim), metrics, session, backfill_margin=0.0)
        gap = time.time() + 1  # the gap starts after the cancel
        assert await sup.backfill.run(gap, gap + 1) == 0
        assert (
            metrics.registry.get_sample_value("bybit_dcp_triggers_total", {"account": "a", "product": "DERIVATIVES"})
            == 0
        )
