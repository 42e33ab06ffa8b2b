"""The simulator keeps time by the clock it is given: with a clock the test advances, a
10 s DCP window passes in no wall time at all."""

import aiohttp
from sim_helpers import KEY, SECRET, WsClient, wait_for
from virtual_clock import VirtualClock

from exporter.simulator import Simulator
from exporter.simulator.accounts import ms


async def test_server_time_comes_from_the_injected_clock():
    clock = VirtualClock(1_700_000_000.25)
    async with Simulator(clock=clock) as sim, aiohttp.ClientSession() as http:
        async with http.get(sim.rest_url + "/v5/market/time") as resp:
            body = await resp.json()
        assert body["result"]["timeSecond"] == "1700000000" and body["time"] == 1_700_000_000_250
        assert sim.state()["time"] == 1_700_000_000.25


async def test_dcp_fires_when_the_clock_passes_the_window_not_before():
    clock = VirtualClock()
    async with Simulator(clock=clock) as sim:  # time_scale 1: Bybit's own 10 s window
        sim.add_account(KEY, SECRET)
        order = sim.place_order(KEY, category="linear")
        bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
        await bot.close()
        started, deadline = await wait_for(lambda: sim.dcp_timer(KEY, "DERIVATIVES"))
        assert (started, deadline) == (clock.time(), clock.time() + 10)

        await clock.advance(9.9)
        await wait_for(lambda: len(clock.deadlines()) == 1)  # the ticker has looked and sleeps again
        assert sim.account(KEY).triggers == []

        await clock.advance(0.2)
        (trigger,) = await wait_for(lambda: sim.account(KEY).triggers)
        assert trigger["time"] == deadline and trigger["order_ids"] == [order["orderId"]]  # at the deadline itself
        cancelled = sim.account(KEY).orders[order["orderId"]]
        assert cancelled["cancelType"] == "CancelByDCP" and cancelled["updatedTime"] == ms(deadline)
