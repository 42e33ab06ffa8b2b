"""The DCP engine end to end over real sockets, cases (a)-(f), with time_scale 0.05 (10 s -> 0.5 s)."""

import asyncio
import time

from sim_helpers import KEY, SECRET, WsClient, wait_for

from exporter.simulator import Simulator
from exporter.simulator.rest import order_history

WINDOW = 10 * 0.05  # the default 10 s window in wall seconds


def statuses(sim, orders):
    acct = sim.account(KEY)
    return [acct.orders[o["orderId"]]["orderStatus"] for o in orders]


async def wait_past(sim, product, extra=0.3):
    """Wait until a moment safely after the window would have run out (timer or not)."""
    deadline = time.time() + WINDOW + extra
    await wait_for(lambda: time.time() >= deadline, timeout=WINDOW + extra + 1)


async def test_a_only_protected_connection_closes_orders_cancelled_after_window_not_before(sim):
    observer = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    linear = [sim.place_order(KEY, category="linear"), sim.place_order(KEY, category="inverse", symbol="BTCUSD")]
    spot = sim.place_order(KEY, category="spot")
    for _ in range(3):
        await observer.recv()  # the New pushes
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    await bot.close()
    closed_at = time.time()
    timer = await wait_for(lambda: sim.dcp_timer(KEY, "DERIVATIVES"), timeout=2)
    started, deadline = timer
    assert abs((deadline - started) - WINDOW) < 1e-6
    # not before: the orders rest until the deadline
    await wait_for(lambda: time.time() >= deadline - 0.1, timeout=2)
    assert statuses(sim, linear) == ["New", "New"] and sim.account(KEY).triggers == []
    push = await observer.recv_until(lambda f: f.get("topic") == "order", timeout=3)
    received_at = time.time()
    assert received_at - closed_at >= WINDOW - 0.05
    assert sorted(o["orderId"] for o in push["data"]) == sorted(o["orderId"] for o in linear)
    for o in push["data"]:
        assert o["orderStatus"] == "Cancelled" and o["cancelType"] == "CancelByDCP"
        assert int(o["updatedTime"]) >= int(deadline * 1000) - 1
    assert statuses(sim, [spot]) == ["New"]  # another product
    (trigger,) = sim.account(KEY).triggers
    assert trigger["product"] == "DERIVATIVES" and sorted(trigger["order_ids"]) == sorted(o["orderId"] for o in linear)
    # kept in history with the cancel type
    hist = order_history(sim.account(KEY), {"category": "linear"}, time.time())["list"]
    assert hist[0]["cancelType"] == "CancelByDCP" and hist[0]["orderStatus"] == "Cancelled"
    await observer.close()


async def test_b_reconnect_and_ping_inside_the_window_cancels_nothing(sim):
    orders = [sim.place_order(KEY, category="linear")]
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    await bot.close()
    await wait_for(lambda: sim.dcp_timer(KEY, "DERIVATIVES"), timeout=2)
    again = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    assert sim.dcp_timer(KEY, "DERIVATIVES") is None
    await wait_past(sim, "DERIVATIVES")
    assert statuses(sim, orders) == ["New"] and sim.account(KEY).triggers == []
    await again.close()


async def test_c_another_protected_connection_alive_cancels_nothing(sim):
    orders = [sim.place_order(KEY, category="linear")]
    keeper = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    await bot.close()
    await wait_for(lambda: len(sim.connections(KEY)) == 1, timeout=2)
    assert sim.dcp_timer(KEY, "DERIVATIVES") is None
    await wait_past(sim, "DERIVATIVES")
    assert statuses(sim, orders) == ["New"] and sim.account(KEY).triggers == []
    await keeper.close()
    await wait_for(lambda: sim.account(KEY).triggers, timeout=3)  # now it is the last one
    assert statuses(sim, orders) == ["Cancelled"]


async def test_d_a_connection_without_dcp_dies_cancels_nothing(sim):
    orders = [sim.place_order(KEY, category="linear"), sim.place_order(KEY, category="spot")]
    plain = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"], ping=True)
    await plain.close()
    await wait_for(lambda: not sim.connections(KEY), timeout=2)
    assert sim.dcp_timer(KEY, "DERIVATIVES") is None and sim.dcp_timer(KEY, "SPOT") is None
    await wait_past(sim, "DERIVATIVES")
    assert statuses(sim, orders) == ["New", "New"] and sim.account(KEY).triggers == []


async def test_e_silent_stall_past_idle_cutoff_counts_as_death():
    cutoff = 0.4
    async with Simulator(time_scale=0.05, idle_cutoff=cutoff) as sim:
        sim.add_account(KEY, SECRET)
        orders = [sim.place_order(KEY, category="linear")]
        bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
        last_frame = time.time()
        # the bot stays connected but says nothing: dead at the cut-off, cancelled a window later
        (trigger,) = await wait_for(lambda: sim.account(KEY).triggers, timeout=5)
        assert trigger["time"] - last_frame >= cutoff + WINDOW - 0.05
        assert statuses(sim, orders) == ["Cancelled"]
        await wait_for(lambda: bot.ws.close_code is not None, timeout=3)  # the server cut it
        # a client that keeps pinging is never cut
        fresh = [sim.place_order(KEY, category="linear")]
        alive = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
        end = time.time() + cutoff * 3
        while time.time() < end:  # bounded: about 12 pings
            await alive.request({"op": "ping"})
            await asyncio.sleep(cutoff / 4)
        assert statuses(sim, fresh) == ["New"] and len(sim.account(KEY).triggers) == 1
        await alive.close()


async def test_f_products_are_independent(sim):
    linear = [sim.place_order(KEY, category="linear")]
    spot = [sim.place_order(KEY, category="spot"), sim.place_order(KEY, category="spot", side="Sell", price="90000")]
    observer = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order.spot"])
    spot_bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.spot"], ping=True)
    future_bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    await spot_bot.close()
    push = await observer.recv_until(lambda f: f["data"][0]["orderStatus"] == "Cancelled", timeout=3)
    assert sorted(o["orderId"] for o in push["data"]) == sorted(o["orderId"] for o in spot)
    assert all(o["cancelType"] == "CancelByDCP" for o in push["data"])
    assert [t["product"] for t in sim.account(KEY).triggers] == ["SPOT"]
    await wait_past(sim, "DERIVATIVES")
    assert statuses(sim, linear) == ["New"]
    await future_bot.close()
    await observer.close()


async def test_product_with_dcp_off_never_triggers(sim):
    sim.set_dcp(KEY, "SPOT", None)
    orders = [sim.place_order(KEY, category="spot")]
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.spot"], ping=True)
    await bot.close()
    await wait_for(lambda: not sim.connections(KEY), timeout=2)
    await wait_past(sim, "SPOT")
    assert statuses(sim, orders) == ["New"] and sim.account(KEY).triggers == []


async def test_a_trigger_with_no_open_orders_cancels_nothing(sim):
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future"], ping=True)
    await bot.close()
    (trigger,) = await wait_for(lambda: sim.account(KEY).triggers, timeout=3)
    assert trigger["order_ids"] == []


async def test_unsubscribing_dcp_stops_protecting_and_the_window_runs(sim):
    orders = [sim.place_order(KEY, category="linear")]
    bot = await WsClient.connect(sim.ws_url, KEY, SECRET, ["dcp.future", "order"], ping=True)
    ack = await bot.request({"req_id": "unsub", "op": "unsubscribe", "args": ["dcp.future"]})
    assert ack["success"] is True
    started, _ = await wait_for(lambda: sim.dcp_timer(KEY, "DERIVATIVES"), timeout=2)
    push = await bot.recv_until(lambda f: f.get("topic") == "order", timeout=WINDOW + 2)
    assert time.time() - started >= WINDOW - 0.05
    assert [o["cancelType"] for o in push["data"]] == ["CancelByDCP"]
    assert statuses(sim, orders) == ["Cancelled"]
    await bot.close()
