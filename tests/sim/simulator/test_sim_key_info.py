"""The simulator's ``GET /v5/user/query-api`` and ``GET /v5/account/info``: signed like the other
endpoints, per-account values set through ``add_account``, the accounts file and the control
surface, and the key's limits enforced (a read-only key's write is refused with 10005, a call
from an address the key is not bound to with 10010). Requests are signed by pybit, Bybit's SDK."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from exporter.simulator import Simulator
from exporter.simulator.cli import build_parser, make_simulator

KEY, SECRET = "sim-key-info-01", "sim-key-info-secret"


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET, name="desk")
        yield s


def pybit(sim: Simulator, key: str = KEY, secret: str = SECRET) -> HTTP:
    session = HTTP(testnet=True, api_key=key, api_secret=secret, max_retries=1, retry_delay=0)
    session.endpoint = sim.rest_url
    return session


async def call(fn, **kw):
    return await asyncio.to_thread(fn, **kw)


async def test_query_api_answers_in_bybits_shape_with_the_defaults(sim):
    body = await call(pybit(sim).get_api_key_information)
    assert body["retCode"] == 0
    result = body["result"]
    assert {"readOnly", "permissions", "ips", "expiredAt", "uta", "deadlineDay", "apiKey", "isMaster"} <= set(result)
    assert result["readOnly"] == 0 and result["ips"] == ["*"] and result["uta"] == 1
    assert result["permissions"]["ContractTrade"] == ["Order", "Position"]
    assert result["secret"] == "" and SECRET not in str(body)
    assert result["deadlineDay"] in (89, 90)  # an unbound key expires after 90 days
    assert sim.account(KEY).rest_calls[-1]["path"] == "/v5/user/query-api"


async def test_account_info_reports_the_account_mode(sim):
    body = await call(pybit(sim).get_account_info)
    assert body["retCode"] == 0 and body["result"]["unifiedMarginStatus"] == 5
    assert body["result"]["dcpStatus"] == "OFF"  # deprecated on Bybit: always OFF
    sim.set_account_mode(KEY, 3)
    body = await call(pybit(sim).get_account_info)
    assert body["result"]["unifiedMarginStatus"] == 3
    assert (await call(pybit(sim).get_api_key_information))["result"]["uta"] == 1


async def test_both_are_signed_like_the_other_endpoints(sim):
    with pytest.raises(InvalidRequestError) as bad:
        await call(pybit(sim, secret="wrong").get_account_info)
    assert bad.value.status_code == 10004
    with pytest.raises(InvalidRequestError) as unknown:
        await call(pybit(sim, key="nobody").get_api_key_information)
    assert unknown.value.status_code == 10003


async def test_a_read_only_key_cannot_write(sim):
    sim.set_key(KEY, read_only=1)
    assert (await call(pybit(sim).get_api_key_information))["result"]["readOnly"] == 1
    with pytest.raises(InvalidRequestError) as refused:
        await call(pybit(sim).set_dcp, timeWindow=20, product="SPOT")
    assert refused.value.status_code == 10005
    acct = sim.account(KEY)
    assert acct.dcp["SPOT"] == 10 and acct.set_dcp_calls == []
    assert [c["ret_code"] for c in acct.writes()] == [10005]  # counted as a write all the same


async def test_a_key_bound_to_other_addresses_is_refused_here(sim):
    sim.set_key(KEY, ips=["203.0.113.7"])
    with pytest.raises(InvalidRequestError) as refused:
        await call(pybit(sim).get_account_info)
    assert refused.value.status_code == 10010
    sim.set_key(KEY, ips=["203.0.113.7", "127.0.0.1"])
    result = (await call(pybit(sim).get_api_key_information))["result"]
    assert result["ips"] == ["203.0.113.7", "127.0.0.1"] and result["expiredAt"] == ""  # bound keys do not expire


async def test_the_controls_set_them_over_http(sim):
    async with aiohttp.ClientSession() as http:
        key = {"read_only": 1, "ips": ["127.0.0.1"], "expired_at": "2027-01-31T00:00:00Z", "permissions": {"Spot": []}}
        async with http.post(f"{sim.control_url}/set_key", json={"api_key": KEY, **key}) as resp:
            assert resp.status == 200
        async with http.post(f"{sim.control_url}/set_account_mode", json={"api_key": KEY, "unified_margin_status": 4}):
            pass
        async with http.post(f"{sim.control_url}/set_key", json={"api_key": KEY, "read_only": 2}) as resp:
            assert resp.status == 400
        async with http.get(f"{sim.control_url}/state") as resp:
            state = (await resp.json())["accounts"][0]
    assert state["key"] == {
        "read_only": 1,
        "ips": ["127.0.0.1"],
        "expired_at": "2027-01-31T00:00:00Z",
        "permissions": {"Spot": []},
    }
    assert state["unified_margin_status"] == 4
    result = (await call(pybit(sim).get_api_key_information))["result"]
    assert result["expiredAt"] == "2027-01-31T00:00:00Z" and result["permissions"] == {"Spot": []}


def test_the_accounts_file_sets_them(tmp_path):
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        "- api_key: a\n  api_secret: s\n  read_only: 1\n  ips: [127.0.0.1]\n  unified_margin_status: 3\n"
        "  expired_at: '2027-01-31T00:00:00Z'\n"
    )
    sim = make_simulator(build_parser().parse_args(["--accounts", str(accounts)]))
    acct = sim.account("a")
    assert (acct.read_only, acct.ips, acct.unified_margin_status) == (1, ["127.0.0.1"], 3)
    assert acct.expired_at == "2027-01-31T00:00:00Z"
