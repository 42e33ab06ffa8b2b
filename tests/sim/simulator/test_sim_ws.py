"""Private-stream shapes over real sockets with the websockets client library, as Bybit documents them."""

import time

import websockets
from sim_helpers import KEY, SECRET, WsClient, wait_for

from exporter.bybit import signing


async def test_auth_success_shape(sim):
    c = await WsClient.connect(sim.ws_url)
    ack = await c.request(
        {"req_id": "a1", "op": "auth", "args": signing.ws_auth_args(KEY, SECRET, int(time.time() * 1000) + 5000)}
    )
    assert set(ack) == {"success", "ret_msg", "op", "conn_id", "req_id"}
    assert ack["success"] is True and ack["ret_msg"] == "" and ack["op"] == "auth" and ack["req_id"] == "a1"
    assert isinstance(ack["conn_id"], str) and ack["conn_id"]
    await c.close()


async def test_auth_failures(sim):
    c = await WsClient.connect(sim.ws_url)
    expired = await c.request({"op": "auth", "args": signing.ws_auth_args(KEY, SECRET, int(time.time() * 1000) - 1)})
    assert expired == {"success": False, "ret_msg": "Params Error", "op": "auth", "conn_id": expired["conn_id"]}
    bad_sig = await c.request(
        {"op": "auth", "args": signing.ws_auth_args(KEY, "wrong", int(time.time() * 1000) + 5000)}
    )
    assert bad_sig["success"] is False and bad_sig["ret_msg"] == "Request not authorized" and bad_sig["op"] == "auth"
    unknown = await c.request(
        {"op": "auth", "args": signing.ws_auth_args("nobody", SECRET, int(time.time() * 1000) + 5000)}
    )
    assert unknown["success"] is False and unknown["ret_msg"] == "Request not authorized"
    malformed = await c.request({"op": "auth", "args": [KEY]})
    assert malformed["success"] is False and malformed["ret_msg"] == "Params Error"
    # the connection stays usable: a correct auth now succeeds
    ok = await c.request({"op": "auth", "args": signing.ws_auth_args(KEY, SECRET, int(time.time() * 1000) + 5000)})
    assert ok["success"] is True
    await c.close()


async def test_subscribe_before_auth_is_refused(sim):
    c = await WsClient.connect(sim.ws_url)
    ack = await c.request({"req_id": "s0", "op": "subscribe", "args": ["order"]})
    assert ack["success"] is False and ack["op"] == "subscribe" and ack["req_id"] == "s0"
    assert sim.account(KEY).subscribed_topics() == set()
    await c.close()


async def test_subscribe_ack_and_unknown_topic_error(sim):
    c = await WsClient.connect(sim.ws_url, KEY, SECRET)
    ack = await c.request({"req_id": "s1", "op": "subscribe", "args": ["order", "dcp.future"]})
    assert ack == {"success": True, "ret_msg": "", "op": "subscribe", "conn_id": ack["conn_id"], "req_id": "s1"}
    bad = await c.request({"req_id": "s2", "op": "subscribe", "args": ["dcp.futures"]})
    assert bad == {
        "success": False,
        "ret_msg": "error:handler not found,topic:dcp.futures",
        "op": "subscribe",
        "conn_id": ack["conn_id"],
        "req_id": "s2",
    }
    assert sim.account(KEY).subscribed_topics() == {"order", "dcp.future"}
    frames_sent = [f for _, f in sim.account(KEY).ws_frames]
    assert {"req_id": "s2", "op": "subscribe", "args": ["dcp.futures"]} in frames_sent
    await c.close()


async def test_ping_pong_shape(sim):
    c = await WsClient.connect(sim.ws_url, KEY, SECRET)
    before = int(time.time() * 1000)
    pong = await c.request({"req_id": "p1", "op": "ping"})
    after = int(time.time() * 1000)
    assert set(pong) == {"req_id", "op", "args", "conn_id"}
    assert pong["req_id"] == "p1" and pong["op"] == "pong"
    assert before <= int(pong["args"][0]) <= after
    await c.close()


async def test_order_pushes_by_topic(sim):
    everything = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    spot_only = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order.spot"])
    linear = sim.place_order(KEY, category="linear", symbol="ETHUSDT", side="Sell", qty="1", price="3000")
    spot = sim.place_order(KEY, category="spot")
    push = await everything.recv()
    assert set(push) == {"id", "topic", "creationTime", "data"}
    assert push["topic"] == "order" and isinstance(push["creationTime"], int)
    order = push["data"][0]
    assert order["orderId"] == linear["orderId"] and order["category"] == "linear"
    for field in (
        "orderLinkId",
        "symbol",
        "side",
        "orderStatus",
        "cancelType",
        "rejectReason",
        "updatedTime",
        "createdTime",
        "price",
        "qty",
    ):
        assert field in order
    assert order["orderStatus"] == "New" and order["symbol"] == "ETHUSDT"
    assert (await everything.recv())["data"][0]["orderId"] == spot["orderId"]
    only = await spot_only.recv()
    assert only["topic"] == "order.spot" and [o["orderId"] for o in only["data"]] == [spot["orderId"]]
    await everything.close()
    await spot_only.close()


async def test_other_accounts_orders_are_not_pushed(sim):
    sim.add_account("other", "s2")
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    sim.place_order("other", category="linear")
    mine = sim.place_order(KEY, category="linear")
    assert (await c.recv())["data"][0]["orderId"] == mine["orderId"]
    await c.close()


async def test_max_active_time_query_parameter_sets_the_idle_cutoff(sim):
    async with websockets.connect(sim.ws_url + "?max_active_time=45s"):
        await wait_for(lambda: [c.idle_cutoff for c in sim.connection_info()] == [45.0])
    await wait_for(lambda: not sim.connection_info())
    async with websockets.connect(sim.ws_url):
        await wait_for(lambda: [c.idle_cutoff for c in sim.connection_info()] == [600.0])


async def test_faults_pong_latency_drop_stall_close_malformed(sim):
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    sim.set_pong_latency(KEY, 0.2)
    t0 = time.monotonic()
    await c.request({"req_id": "slow", "op": "ping"})
    assert time.monotonic() - t0 >= 0.2
    sim.set_pong_latency(KEY, 0)
    sim.drop_pongs(KEY, True)
    await c.send({"req_id": "lost", "op": "ping"})
    await wait_for(lambda: any(f.get("req_id") == "lost" for _, f in sim.account(KEY).ws_frames))
    sim.drop_pongs(KEY, False)
    pong = await c.request({"req_id": "back", "op": "ping"})
    assert pong["req_id"] == "back"  # the dropped pong never came
    sim.send_malformed(KEY, "{not json")
    assert await c.ws.recv() == "{not json"
    sim.stall(KEY, True)
    await c.send({"req_id": "void", "op": "ping"})
    await wait_for(lambda: any(f.get("req_id") == "void" for _, f in sim.account(KEY).ws_frames))
    sim.place_order(KEY, category="linear")  # not pushed to a stalled connection
    try:
        frame = await c.recv(timeout=0.3)
    except TimeoutError:
        frame = None
    assert frame is None
    sim.stall(KEY, False)
    assert (await c.request({"req_id": "alive", "op": "ping"}))["req_id"] == "alive"
    assert sim.close_connections(KEY, code=4001, reason="drill") == 1
    try:
        await c.recv(timeout=2)
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd.code == 4001 and exc.rcvd.reason == "drill"
    else:
        raise AssertionError("the connection was not closed")
