"""REST surface over real loopback sockets: pybit (Bybit's SDK) signs, the simulator checks."""

import asyncio
import time

import aiohttp
import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP
from sim_helpers import KEY, SECRET, signed_get, signed_post, wait_for

from exporter.simulator import Simulator

LIMIT_HEADERS = ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")


def pybit_session(sim, key=KEY, secret=SECRET, **kw) -> HTTP:
    session = HTTP(testnet=True, api_key=key, api_secret=secret, max_retries=1, retry_delay=0, **kw)
    session.endpoint = sim.rest_url
    return session


async def past_millisecond(ms: int) -> None:
    """Wait until the wall clock is past ``ms``, so the next order gets a later timestamp."""
    await wait_for(lambda: int(time.time() * 1000) > ms, interval=0.001)


async def call(fn, **kw):
    return await asyncio.to_thread(fn, **kw)


async def test_server_time_shape(sim):
    before = time.time()
    body = await call(pybit_session(sim).get_server_time)
    assert body["retCode"] == 0 and body["retMsg"] == "OK" and body["retExtInfo"] == {}
    assert set(body["result"]) == {"timeSecond", "timeNano"}
    assert abs(int(body["result"]["timeSecond"]) - before) <= 2
    assert int(body["result"]["timeNano"]) // 1_000_000_000 == int(body["result"]["timeSecond"])
    assert isinstance(body["time"], int) and abs(body["time"] / 1000 - before) < 2


async def test_pybit_query_dcp_info_default_account(sim):
    body = await call(pybit_session(sim).query_dcp_info)
    assert body["retCode"] == 0 and body["retMsg"] == "success"
    assert body["result"] == {
        "dcpInfos": [
            {"product": "SPOT", "dcpStatus": "ON", "timeWindow": "10"},
            {"product": "DERIVATIVES", "dcpStatus": "ON", "timeWindow": "10"},
        ]
    }
    assert body["retExtInfo"] == {} and isinstance(body["time"], int)
    assert sim.account(KEY).rest_calls[-1]["path"] == "/v5/account/query-dcp-info"
    assert sim.account(KEY).rest_calls[-1]["ret_code"] == 0


async def test_account_without_dcp_gets_an_empty_list(sim):
    sim.add_account("bare", "s", dcp={})
    body = await call(pybit_session(sim, "bare", "s").query_dcp_info)
    assert body["result"] == {"dcpInfos": []}


async def test_pybit_set_dcp_changes_the_window_and_has_no_result(sim):
    body = await call(pybit_session(sim).set_dcp, timeWindow=40, product="DERIVATIVES")
    assert body == {"retCode": 0, "retMsg": "success", "retExtInfo": {}, "time": body["time"]}
    assert sim.account(KEY).dcp["DERIVATIVES"] == 40
    assert sim.account(KEY).set_dcp_calls == [("DERIVATIVES", 40)]
    info = await call(pybit_session(sim).query_dcp_info)
    assert {"product": "DERIVATIVES", "dcpStatus": "ON", "timeWindow": "40"} in info["result"]["dcpInfos"]


async def test_product_defaults_to_options(sim):
    sim.add_account("opt", "s", dcp={"OPTIONS": 10, "DERIVATIVES": 10})
    await call(pybit_session(sim, "opt", "s").set_dcp, timeWindow=25)
    assert sim.account("opt").dcp == {"OPTIONS": 25, "DERIVATIVES": 10}
    assert sim.account("opt").set_dcp_calls == [("OPTIONS", 25)]


async def test_setting_a_product_not_enabled_is_refused(sim):
    # the default account has OPTIONS off, and product defaults to OPTIONS
    with pytest.raises(InvalidRequestError) as exc:
        await call(pybit_session(sim).set_dcp, timeWindow=25)
    assert exc.value.status_code == 10001
    assert "OPTIONS" not in sim.account(KEY).dcp and sim.account(KEY).set_dcp_calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"product": "SPOT", "timeWindow": 2},
        {"product": "SPOT", "timeWindow": 301},
        {"product": "SPOT", "timeWindow": "10"},
        {"product": "FUTURES", "timeWindow": 10},
    ],
)
async def test_bad_set_dcp_params_give_10001(sim, body):
    async with aiohttp.ClientSession() as http:
        status, _, resp = await signed_post(http, sim.rest_url, "/v5/order/disconnected-cancel-all", KEY, SECRET, body)
    assert status == 200 and resp["retCode"] == 10001 and resp["result"] == {}
    assert sim.account(KEY).dcp["SPOT"] == 10


async def test_wrong_secret_gives_10004(sim):
    with pytest.raises(InvalidRequestError) as exc:
        await call(pybit_session(sim, KEY, "not-the-secret").query_dcp_info)
    assert exc.value.status_code == 10004
    assert sim.account(KEY).rest_calls[-1]["ret_code"] == 10004


async def test_unknown_key_gives_10003(sim):
    with pytest.raises(InvalidRequestError) as exc:
        await call(pybit_session(sim, "nobody", SECRET).query_dcp_info)
    assert exc.value.status_code == 10003


@pytest.mark.parametrize("offset_ms", [-10_000, +2_000])
async def test_timestamp_outside_recv_window_gives_10002(sim, offset_ms):
    async with aiohttp.ClientSession() as http:
        ts = int(time.time() * 1000) + offset_ms
        _, _, body = await signed_get(
            http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET, ts_ms=ts, recv=5000
        )
        assert body["retCode"] == 10002
        # a wider receive window accepts the same late timestamp (only for the past side)
        if offset_ms < 0:
            _, _, ok = await signed_get(
                http,
                sim.rest_url,
                "/v5/account/query-dcp-info",
                KEY,
                SECRET,
                ts_ms=int(time.time() * 1000) + offset_ms,
                recv=20_000,
            )
            assert ok["retCode"] == 0


async def test_rsa_account_signed_by_pybit_is_accepted(sim, rsa_pem_pair):
    private_pem, public_pem = rsa_pem_pair()
    sim.add_account("rsa-key", rsa_public_key_pem=public_pem)
    body = await call(pybit_session(sim, "rsa-key", private_pem, rsa_authentication=True).query_dcp_info)
    assert body["retCode"] == 0
    other_pem, _ = rsa_pem_pair()
    with pytest.raises(InvalidRequestError) as exc:
        await call(pybit_session(sim, "rsa-key", other_pem, rsa_authentication=True).query_dcp_info)
    assert exc.value.status_code == 10004


async def test_rate_limit_5_per_second_on_dcp_endpoints_with_headers(sim):
    async with aiohttp.ClientSession() as http:
        results = [await signed_get(http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET) for _ in range(6)]
        for status, headers, _ in results:
            assert status == 200 and all(h in headers for h in LIMIT_HEADERS)
        codes = [b["retCode"] for _, _, b in results]
        assert codes == [0, 0, 0, 0, 0, 10006]
        assert [h["X-Bapi-Limit-Status"] for _, h, _ in results] == ["4", "3", "2", "1", "0", "0"]
        assert results[0][1]["X-Bapi-Limit"] == "5"
        reset_ms = int(results[-1][1]["X-Bapi-Limit-Reset-Timestamp"])
        assert time.time() * 1000 < reset_ms <= time.time() * 1000 + 1000
        # the other DCP endpoint has its own budget; after the reset the budget is back
        status, headers, body = await signed_post(
            http, sim.rest_url, "/v5/order/disconnected-cancel-all", KEY, SECRET, {"product": "SPOT", "timeWindow": 12}
        )
        assert body["retCode"] == 0 and headers["X-Bapi-Limit-Status"] == "4"
        await wait_for(lambda: time.time() * 1000 >= reset_ms, timeout=2)
        _, _, again = await signed_get(http, sim.rest_url, "/v5/account/query-dcp-info", KEY, SECRET)
        assert again["retCode"] == 0


async def test_orders_create_realtime_and_history_with_pybit(sim):
    s = pybit_session(sim)
    created = await call(
        s.place_order,
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.01",
        price="50000",
        orderLinkId="mine-1",
    )
    assert created["retCode"] == 0 and created["result"]["orderLinkId"] == "mine-1"
    order_id = created["result"]["orderId"]
    assert sim.account(KEY).orders[order_id]["orderStatus"] == "New"
    open_ = await call(s.get_open_orders, category="linear")
    assert open_["result"]["category"] == "linear"
    assert [o["orderId"] for o in open_["result"]["list"]] == [order_id]
    assert open_["result"]["list"][0]["orderStatus"] == "New"
    market = await call(s.place_order, category="spot", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.01")
    assert sim.account(KEY).orders[market["result"]["orderId"]]["orderStatus"] == "Filled"
    history = await call(s.get_order_history, category="linear")
    assert [o["orderId"] for o in history["result"]["list"]] == [order_id]
    with pytest.raises(InvalidRequestError) as exc:
        await call(s.place_order, category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.01")
    assert exc.value.status_code == 10001


async def test_history_pagination_newest_first_time_bounds_and_params(sim):
    ids = []
    for i in range(7):
        order = sim.place_order(KEY, category="linear", price=str(10000 + i))
        ids.append(order["orderId"])
        await past_millisecond(int(order["updatedTime"]))  # distinct ms timestamps
    sim.place_order(KEY, category="spot")
    s = pybit_session(sim)
    seen, cursor = [], None
    for _ in range(10):
        kw = {"category": "linear", "limit": 3}
        if cursor:
            kw["cursor"] = cursor
        page = (await call(s.get_order_history, **kw))["result"]
        assert len(page["list"]) <= 3
        seen += [o["orderId"] for o in page["list"]]
        cursor = page["nextPageCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    acct = sim.account(KEY)
    mid = int(acct.orders[ids[3]]["updatedTime"])
    window = (await call(s.get_order_history, category="linear", startTime=mid, endTime=mid))["result"]["list"]
    assert [o["orderId"] for o in window] == [ids[3]]
    for bad in ({"limit": 0}, {"limit": 51}, {}):
        with pytest.raises(InvalidRequestError) as exc:
            await call(s.get_order_history, **({"category": "linear"} | bad if bad else {}))
        assert exc.value.status_code == 10001


async def test_settle_delay_makes_a_new_window_take_effect_later():
    async with Simulator(time_scale=0.05, settle_delay=10) as sim:  # 0.5 s
        sim.add_account(KEY, SECRET)
        s = pybit_session(sim)
        await call(s.set_dcp, timeWindow=30, product="SPOT")
        first = await call(s.query_dcp_info)
        assert {"product": "SPOT", "dcpStatus": "ON", "timeWindow": "10"} in first["result"]["dcpInfos"]
        await wait_for(lambda: sim.account(KEY).dcp["SPOT"] == 30, timeout=3)
        later = await call(s.query_dcp_info)
        assert {"product": "SPOT", "dcpStatus": "ON", "timeWindow": "30"} in later["result"]["dcpInfos"]


async def test_forced_errors_count_and_http_statuses(sim):
    s = pybit_session(sim)
    sim.force_error("/v5/account/query-dcp-info", 10016, count=1)
    with pytest.raises(InvalidRequestError) as exc:
        await call(s.query_dcp_info)
    assert exc.value.status_code == 10016
    assert (await call(s.query_dcp_info))["retCode"] == 0
    sim.force_error("/v5/account/query-dcp-info", 403, count=None)
    for _ in range(2):
        with pytest.raises(FailedRequestError) as exc:
            await call(s.query_dcp_info)
        assert exc.value.status_code == 403
    sim.clear_errors()
    assert (await call(s.query_dcp_info))["retCode"] == 0
    sim.force_error("/v5/market/time", 10016)
    async with aiohttp.ClientSession() as http:
        async with http.get(sim.rest_url + "/v5/market/time") as resp:
            assert (await resp.json())["retCode"] == 10016
        sim.force_error("/v5/order/history", 10006)
        _, headers, body = await signed_get(http, sim.rest_url, "/v5/order/history", KEY, SECRET, "category=linear")
        assert body["retCode"] == 10006 and headers["X-Bapi-Limit-Status"] == "0"


async def test_set_dcp_behind_the_back(sim):
    sim.set_dcp(KEY, "SPOT", None)
    sim.set_dcp(KEY, "OPTIONS", 20)
    body = await call(pybit_session(sim).query_dcp_info)
    assert body["result"]["dcpInfos"] == [
        {"product": "DERIVATIVES", "dcpStatus": "ON", "timeWindow": "10"},
        {"product": "OPTIONS", "dcpStatus": "ON", "timeWindow": "20"},
    ]
    assert sim.account(KEY).set_dcp_calls == []  # not a client's call
