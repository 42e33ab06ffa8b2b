"""Websocket frames and handshakes no Bybit should send: counted, never followed, never raised."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from test_stream import KEY, Harness, sim, until  # noqa: F401 - sim is a fixture

from exporter.bybit import messages as msg


@pytest.mark.parametrize("arg", ["Infinity", "-Infinity", "NaN", "1e400", "1e20", "1675418560633000", '"soon"', "true"])
def test_a_pong_with_an_insane_server_time_is_invalid_not_an_exception(arg):
    frame = msg.parse_frame('{"op":"pong","req_id":"x-ping-1","args":[%s]}' % arg)
    assert isinstance(frame, msg.Invalid) and frame.kind in ("bad_pong", "not_json")


def test_a_pong_with_bybits_time_keeps_it_to_the_millisecond():
    frame = msg.parse_frame('{"op":"pong","req_id":"r","args":["1675418560633"]}')
    assert frame == msg.Pong(req_id="r", server_ms=1675418560633)


@pytest.mark.parametrize("created", ["1e400", '"1e20"', "-1", '{"a": 1}'])
def test_an_order_push_with_an_insane_creation_time_keeps_its_orders_without_the_time(created):
    frame = msg.parse_frame('{"topic":"order","creationTime":%s,"data":[{"orderId":"1"}]}' % created)
    assert isinstance(frame, msg.OrderPush) and frame.creation_time_ms is None and frame.orders == [{"orderId": "1"}]


@pytest.mark.parametrize("op", ["[1, [2, [3]]]", '{"a": "b"}', str(10**4000)[:4000]])
def test_an_op_of_any_type_is_an_unknown_op(op):
    frame = msg.parse_frame('{"op": %s}' % op)
    assert isinstance(frame, msg.Invalid) and frame.kind == "unknown_op" and len(frame.detail) <= 200


async def test_a_redirected_stream_is_not_followed_and_the_auth_frame_never_leaves(sim):  # noqa: F811
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(sim.ws_url)

    app = web.Application()
    app.router.add_get("/v5/private", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/v5/private"
    try:
        async with Harness(url) as h:
            await until(lambda: (h.reconnects("redirect") or 0) >= 2, what="two refused redirects")
            assert h.value("bybit_dcp_ws_connected") == 0
    finally:
        await runner.cleanup()
    assert sim.connections() == [] and sim.account(KEY).ws_frames == []


async def test_an_insane_pong_is_counted_and_the_heartbeat_goes_on(sim):  # noqa: F811
    async with Harness(sim.ws_url) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
        for arg in ("Infinity", "1e400"):
            sim.send_malformed(KEY, '{"op":"pong","args":[%s]}' % arg)
        sim.send_malformed(KEY, json.dumps({"op": "pong", "args": [str(10**30)]}))
        await until(lambda: h.value("bybit_dcp_ws_invalid_messages_total") == 3, what="3 invalid pongs")
        before = h.rtt_count()
        await until(lambda: h.rtt_count() > before, what="heartbeat goes on")
        assert h.value("bybit_dcp_ws_connected") == 1
