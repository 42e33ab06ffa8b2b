"""The HTTP control surface under /__sim__: every fault reachable with a JSON POST."""

import asyncio
import json
import time

import aiohttp
import websockets
from sim_helpers import KEY, SECRET, WsClient, signed_get, silent_client, wait_for

from exporter.bybit import signing
from exporter.simulator import Simulator


async def post(http, sim, name, body=None):
    async with http.post(f"{sim.control_url}/{name}", json=body if body is not None else {}) as resp:
        return resp.status, await resp.json()


async def test_state_lists_accounts_connections_and_faults(sim):
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order", "dcp.spot"])
    async with aiohttp.ClientSession() as http:
        await post(http, sim, "set_pong_latency", {"api_key": KEY, "seconds": 0.05})
        async with http.get(sim.control_url + "/state") as resp:
            state = await resp.json()
    (acct,) = state["accounts"]
    assert acct["api_key"] == f"{KEY[:3]}***{KEY[-2:]}" and KEY not in json.dumps(state) and acct["name"] == "desk-a"
    assert acct["dcp"] == {"DERIVATIVES": 10, "SPOT": 10}
    assert acct["subscribed_topics"] == ["dcp.spot", "order"]
    assert [sorted(x["topics"]) for x in acct["connections"]] == [["dcp.spot", "order"]]
    assert acct["faults"]["pong_latency"] == 0.05
    assert SECRET not in str(state)  # the control surface never shows secrets
    await c.close()


async def test_control_calls_drive_the_faults(sim):
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, sim, "place_order", {"api_key": KEY, "category": "linear", "price": "123"})
        assert status == 200 and body["ok"] and body["result"]["price"] == "123"
        assert (await c.recv())["data"][0]["orderId"] == body["result"]["orderId"]

        assert (await post(http, sim, "set_dcp", {"api_key": KEY, "product": "SPOT", "window": 42}))[0] == 200
        assert (await post(http, sim, "set_dcp", {"api_key": KEY, "product": "DERIVATIVES", "window_or_None": None}))[
            0
        ] == 200
        assert sim.account(KEY).dcp == {"SPOT": 42}

        await post(http, sim, "force_error", {"path": "/v5/account/query-dcp-info", "ret_code": 10016, "count": 1})
        _, _, first = await signed_get(http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET)
        _, _, second = await signed_get(http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET)
        assert (first["retCode"], second["retCode"]) == (10016, 0)
        await post(http, sim, "force_error", {"path": "/v5/order/history", "ret_code": 10002, "count": None})
        await post(http, sim, "clear_errors")
        _, _, hist = await signed_get(http, sim.rest_url, "/v5/order/history", KEY, SECRET, "category=linear")
        assert hist["retCode"] == 0

        await post(http, sim, "set_pong_latency", {"api_key": KEY, "seconds": 0.15})
        t0 = time.monotonic()
        await c.request({"req_id": "x", "op": "ping"})
        assert time.monotonic() - t0 >= 0.15
        await post(http, sim, "reset_faults")
        await post(http, sim, "drop_pongs", {"api_key": KEY, "drop": True})
        await c.send({"req_id": "gone", "op": "ping"})
        await wait_for(lambda: any(f.get("req_id") == "gone" for _, f in sim.account(KEY).ws_frames))
        await post(http, sim, "drop_pongs", {"api_key": KEY, "drop": False})
        assert (await c.request({"req_id": "here", "op": "ping"}))["req_id"] == "here"

        await post(http, sim, "stall", {"api_key": KEY, "stalled": True})
        assert sim.state()["accounts"][0]["connections"][0]["stalled"] is True
        await post(http, sim, "stall", {"api_key": KEY, "stalled": False})

        status, body = await post(http, sim, "send_malformed", {"api_key": KEY, "text": "]]garbage"})
        assert body == {"ok": True, "result": 1}
        assert await c.ws.recv() == "]]garbage"

        status, body = await post(http, sim, "close_connections", {"api_key": KEY, "code": 1011, "reason": "boom"})
        assert body["result"] == 1
        try:
            await c.recv(timeout=2)
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd.code == 1011
        else:
            raise AssertionError("not closed")


async def test_control_errors(sim):
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, sim, "format_disk", {})
        assert status == 404 and body["ok"] is False and "stall" in body["controls"]
        status, body = await post(http, sim, "stall", {"api_key": "nobody", "stalled": True})
        assert status == 400 and body["ok"] is False
        status, body = await post(http, sim, "set_dcp", {"api_key": KEY, "product": "SPOT", "window": 2})
        assert status == 400
        status, body = await post(http, sim, "stall", {"bogus": 1})
        assert status == 400


async def test_start_refuses_non_loopback():
    sim = Simulator()
    try:
        await sim.start("0.0.0.0", 0)
    except ValueError as exc:
        assert "loopback" in str(exc)
    else:
        await sim.stop()
        raise AssertionError("listened on a non-loopback address")


async def test_localhost_listens_on_one_address_and_port():
    sim_ = Simulator()
    await sim_.start("localhost", 0)
    try:
        bound = set(sim_.listening_addresses())
        assert bound == {("127.0.0.1", sim_.port)} and sim_.host == "127.0.0.1"
        async with aiohttp.ClientSession() as http:
            async with http.get(sim_.rest_url + "/v5/market/time") as resp:
                assert resp.status == 200
    finally:
        await sim_.stop()


async def test_stop_with_clients_that_never_read_finishes_within_a_bound():
    sim_ = Simulator()
    sim_.add_account(KEY, SECRET)
    await sim_.start()
    clients = [await silent_client(sim_.host, sim_.port, KEY, SECRET) for _ in range(4)]
    try:
        await wait_for(lambda: len(sim_.connections(KEY)) == 4)
        for _ in range(300):  # far more than the socket buffers hold: the server's sends back up
            sim_.send_malformed(KEY, "x" * (1 << 16))
        await wait_for(lambda: all(c.write_buffer_bytes > (1 << 20) for c in sim_.connection_info()))
        started = time.monotonic()
        await asyncio.wait_for(sim_.stop(), 10)
        assert time.monotonic() - started < 2.0 + 2.0
        assert sim_.background_tasks() == 0
    finally:
        for c in clients:
            c.transport.abort()


async def test_refused_streams_and_a_lower_rate_limit(sim):
    """The faults the alert matrix needs: a stream that is down while REST works, and low headroom."""
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    async with aiohttp.ClientSession() as http:
        status, body = await post(http, sim, "refuse_streams", {"api_key": KEY, "refused": True})
        assert body == {"ok": True, "result": 1}
        assert sim.state()["accounts"][0]["faults"]["refuse_streams"] is True
        try:
            await c.recv(timeout=2)
        except websockets.ConnectionClosed:
            pass
        else:
            raise AssertionError("not closed")
        refused = await WsClient.connect(sim.ws_url)
        frame = {
            "req_id": "a",
            "op": "auth",
            "args": signing.ws_auth_args(KEY, SECRET, int(time.time() * 1000) + 10_000),
        }
        assert (await refused.request(frame))["ret_msg"] == "Request not authorized"
        await refused.ws.close()
        _, _, rest = await signed_get(http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET)
        assert rest["retCode"] == 0  # REST still works
        await post(http, sim, "refuse_streams", {"api_key": KEY, "refused": False})
        await (await WsClient.connect(sim.ws_url, KEY, SECRET)).ws.close()

        path = "/v5/account/query-dcp-info"
        assert (await post(http, sim, "set_rate_limit", {"path": path, "per_second": 2}))[0] == 200
        _, first, _ = await signed_get(http, sim.rest_url, path, KEY, SECRET)
        _, second, _ = await signed_get(http, sim.rest_url, path, KEY, SECRET)
        _, _, third = await signed_get(http, sim.rest_url, path, KEY, SECRET)
        assert (first["X-Bapi-Limit"], second["X-Bapi-Limit-Status"]) == ("2", "0")  # the earlier call counts too
        assert third["retCode"] == 10006
        assert (await post(http, sim, "set_rate_limit", {"path": path, "per_second": 0}))[0] == 400


async def test_abort_connections_is_an_abnormal_closure_and_refuse_subscribe_answers_false(sim):
    """The fault matrix's 1006 (no close frame) and subscribe rejection, over the control surface."""
    c = await WsClient.connect(sim.ws_url, KEY, SECRET, ["order"])
    async with aiohttp.ClientSession() as http:
        assert await post(http, sim, "abort_connections", {"api_key": KEY}) == (200, {"ok": True, "result": 1})
        try:
            await c.recv(timeout=2)
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is None and exc.sent is None  # no close frame either way: an abnormal closure (1006)
        else:
            raise AssertionError("not dropped")
        await wait_for(lambda: sim.connections(KEY) == [])

        assert (await post(http, sim, "refuse_subscribe", {"api_key": KEY, "on": True}))[0] == 200
        assert sim.state()["accounts"][0]["faults"]["refuse_subscribe"] is True
        refused = await WsClient.connect(sim.ws_url, KEY, SECRET)  # auth still works
        ack = await refused.request({"req_id": "s", "op": "subscribe", "args": ["dcp.future"]})
        assert (ack["op"], ack["success"], ack["req_id"]) == ("subscribe", False, "s")
        assert ack["ret_msg"] == "error:subscribe refused by fault injection"
        assert "dcp.future" not in sim.account(KEY).subscribed_topics()  # refused: not held
        await post(http, sim, "refuse_subscribe", {"api_key": KEY, "on": False})
        ack = await refused.request({"req_id": "t", "op": "subscribe", "args": ["dcp.future"]})
        assert ack["success"] is True
        await post(http, sim, "refuse_subscribe", {"api_key": KEY})  # on by default
        await post(http, sim, "reset_faults")  # and reset lifts it
        assert sim.state()["accounts"][0]["faults"]["refuse_subscribe"] is False
        await refused.ws.close()
