"""REST answers no Bybit should give: each is an error or a counted invalid value, never a wedge or a lie.

The simulator's ``force_response`` sends a raw answer (status, body, headers) before any check.
"""

from __future__ import annotations

import json
import random
import time

import pytest
from helpers import ShiftedClock, rest_client

from exporter.bybit.errors import OWN_CODES, ParamError, RateLimited, TransportError
from exporter.bybit.rest import QUERY_DCP_INFO, SERVER_TIME, RestClient
from exporter.bybit.sanity import MAX_RATE_LIMIT_WAIT
from exporter.metrics import Metrics
from exporter.simulator import Simulator

KEY = "hostile-rest-key"
SECRET = "hostile-rest-secret-0123456789"


def sample(metrics: Metrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def sim():
    async with Simulator(rate_limit_per_second=1000) as s:
        s.add_account(KEY, SECRET)
        yield s


def client(rest_session, sim, metrics, **kw) -> RestClient:
    return rest_client(rest_session, sim.rest_url, metrics, KEY, SECRET, **kw)


def body(**fields) -> str:
    return json.dumps({"retCode": 0, "retMsg": "OK", **fields})


@pytest.mark.parametrize("reset", ["inf", "nan", "1700000000000000", "soon", "-1e300"])
async def test_a_rate_limit_with_an_insane_reset_time_waits_the_fallback_not_forever(sim, rest_session, reset):
    m = Metrics()
    c = client(rest_session, sim, m)
    sim.force_response(
        QUERY_DCP_INFO,
        body=json.dumps({"retCode": 10006, "retMsg": "Too many visits!"}),
        headers={"X-Bapi-Limit-Reset-Timestamp": reset},
    )
    before = time.time()
    with pytest.raises(RateLimited) as exc:
        await c.query_dcp_info()
    assert exc.value.reset_at is not None and exc.value.reset_at <= before + 2.0
    invalid = sample(m, "bybit_dcp_invalid_values_total", account="acct", field="X-Bapi-Limit-Reset-Timestamp")
    assert invalid == 1


async def test_a_reset_time_far_ahead_is_clamped_to_the_longest_documented_wait(sim, rest_session):
    now = [time.time()]
    c = client(rest_session, sim, Metrics(), clock=ShiftedClock(lambda: now[0]))
    far = (now[0] + 30 * 24 * 3600) * 1000  # a sane timestamp, a month ahead
    sim.force_response(
        QUERY_DCP_INFO, body=json.dumps({"retCode": 10006}), headers={"X-Bapi-Limit-Reset-Timestamp": str(far)}
    )
    with pytest.raises(RateLimited) as exc:
        await c.query_dcp_info()
    assert exc.value.reset_at == pytest.approx(now[0] + MAX_RATE_LIMIT_WAIT)
    now[0] += MAX_RATE_LIMIT_WAIT + 1  # the clamped wait is over: calls go out again
    assert "SPOT" in await c.query_dcp_info()


@pytest.mark.parametrize(
    "answer",
    [
        {"timeSecond": "inf", "timeNano": "inf"},
        {"timeSecond": "1e400"},
        {"timeNano": str(10**30)},
        {"timeSecond": "NaN"},
        "not an object",
    ],
)
async def test_an_insane_server_time_after_10002_is_an_error_and_signing_keeps_working(sim, rest_session, answer):
    m = Metrics()
    c = client(rest_session, sim, m)
    sim.force_error(QUERY_DCP_INFO, 10002, count=1)
    sim.force_response(SERVER_TIME, body=body(result=answer))
    with pytest.raises(TransportError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "invalid"
    assert c.time_offset == 0.0
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="server_time", code="invalid") == 1
    assert "SPOT" in await c.query_dcp_info()  # no OverflowError from a poisoned offset


@pytest.mark.parametrize(
    "result",
    [
        None,
        [],
        {},
        {"dcpInfos": None},
        {"dcpInfos": "SPOT"},
        {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": "99999999999999999999"}]},
        {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": "inf"}]},
        {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": 1}]},
        {"dcpInfos": [{"product": "SPOT", "dcpStatus": None, "timeWindow": "10"}]},
    ],
)
async def test_a_success_without_a_usable_result_is_an_invalid_error_not_dcp_off(sim, rest_session, result):
    m = Metrics()
    c = client(rest_session, sim, m)
    fields = {} if result is None else {"result": result}
    sim.force_response(QUERY_DCP_INFO, body=body(**fields))
    with pytest.raises(TransportError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "invalid"
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="invalid") == 1


@pytest.mark.parametrize("result", [None, [], {"list": {"a": 1}}, {"list": "x"}])
async def test_an_order_history_without_a_list_is_an_invalid_error(sim, rest_session, result):
    m = Metrics()
    c = client(rest_session, sim, m)
    sim.force_response("/v5/order/history", body=body(result=result))
    with pytest.raises(TransportError) as exc:
        await c.order_history("linear", 0, 1)
    assert exc.value.code == "invalid"


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '{"retCode": 0, "result": ' * 5000, '{"retCode": Infinity}', "\xff\xfe", "1e400"]
)
async def test_deep_or_non_standard_json_is_an_invalid_error_not_a_crash(sim, rest_session, text):
    m = Metrics()
    c = client(rest_session, sim, m)
    sim.force_response(QUERY_DCP_INFO, body=text)
    with pytest.raises(TransportError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "invalid"


async def test_insane_time_and_header_counts_are_counted_and_left_out_of_the_gauges(sim, rest_session):
    m = Metrics()
    c = client(rest_session, sim, m)
    dcp = {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": "10"}]}
    sim.force_response(
        QUERY_DCP_INFO, body=body(result=dcp, time=1e20), headers={"X-Bapi-Limit": "nan", "X-Bapi-Limit-Status": "-5"}
    )
    assert "SPOT" in await c.query_dcp_info()
    assert sample(m, "bybit_dcp_clock_skew_seconds", account="acct") is None
    assert sample(m, "bybit_dcp_api_rate_limit", account="acct", endpoint="query_dcp_info") is None
    for field in ("time", "X-Bapi-Limit", "X-Bapi-Limit-Status"):
        assert sample(m, "bybit_dcp_invalid_values_total", account="acct", field=field) == 1


async def test_a_redirect_is_an_error_and_the_credentials_never_reach_the_other_host(sim, rest_session):
    async with Simulator() as elsewhere:
        elsewhere.add_account(KEY, SECRET)  # it would record a request signed with the key
        m = Metrics()
        c = client(rest_session, sim, m)
        for status in (301, 302, 307, 308):
            sim.force_response(QUERY_DCP_INFO, status=status, headers={"Location": elsewhere.rest_url + QUERY_DCP_INFO})
            with pytest.raises(TransportError) as exc:
                await c.query_dcp_info()
            assert exc.value.code == "redirect"
        assert elsewhere.account(KEY).rest_calls == []
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="redirect") == 4


async def test_a_thousand_random_codes_make_a_bounded_set_of_series(sim, rest_session):
    m = Metrics()
    c = client(rest_session, sim, m)
    rng = random.Random(10)
    codes = [
        rng.choice([rng.randint(1, 10**9), rng.randint(10000, 10020), rng.randint(100000, 200000)]) for _ in range(1000)
    ]
    for code in codes:
        sim.force_response(QUERY_DCP_INFO, body=json.dumps({"retCode": code, "retMsg": "x"}))
        with pytest.raises(Exception):  # noqa: B017 - every typed error will do
            await c.query_dcp_info()
    labels = {
        s.labels["code"]
        for family in m.registry.collect()
        if family.name == "bybit_dcp_api_errors"
        for s in family.samples
        if s.name.endswith("_total")
    }
    # docs/v5/error.mdx; 10018 is struck through there (deprecated): it is "other"
    documented = {str(c) for c in (-1, *range(10000, 10011), 10014, 10016, 10017, 10024, 10027, 10028, 10029)}
    assert labels <= documented | set(OWN_CODES) | {"other"}
    assert "other" in labels and "10018" not in labels and 10018 in codes
    assert len(labels) <= 15


async def test_a_cursor_with_reserved_characters_is_sent_as_signed(sim, rest_session):
    """The simulator checks the signature against the raw query string, as Bybit does."""
    c = client(rest_session, sim, Metrics())
    with pytest.raises(ParamError):  # the signature passed; only the made-up cursor is refused
        await c.order_history("linear", 0, 1, cursor="a!$'()*,/:?@ b=c&d")


async def test_a_reset_timestamp_of_now_is_no_reset_a_refused_call_waits_the_fallback(sim, rest_session):
    """docs/v5/rate-limit/rate-limit.mdx: X-Bapi-Limit-Reset-Timestamp is when the limit resets
    if you have exceeded it, otherwise just the current timestamp. A 10006 whose header says
    "now" waits the fallback (1 s), not nothing; a success saying "now" blocks nothing."""
    from exporter.bybit.answers import RATE_LIMIT_FALLBACK_SECONDS

    now = [time.time()]
    m = Metrics()
    c = client(rest_session, sim, m, clock=ShiftedClock(lambda: now[0]))
    now_ms = str(int(now[0] * 1000))
    infos = {"dcpInfos": [{"product": "SPOT", "dcpStatus": "ON", "timeWindow": "10"}]}
    sim.force_response(QUERY_DCP_INFO, body=body(result=infos), headers={"X-Bapi-Limit-Reset-Timestamp": now_ms})
    assert "SPOT" in await c.query_dcp_info()
    assert c.blocked_until("query_dcp_info") is None
    sim.force_response(
        QUERY_DCP_INFO,
        body=json.dumps({"retCode": 10006, "retMsg": "Too many visits!"}),
        headers={"X-Bapi-Limit-Reset-Timestamp": now_ms},
    )
    with pytest.raises(RateLimited) as exc:
        await c.query_dcp_info()
    assert exc.value.reset_at == pytest.approx(now[0] + RATE_LIMIT_FALLBACK_SECONDS)
    assert c.blocked_until("query_dcp_info") == pytest.approx(now[0] + RATE_LIMIT_FALLBACK_SECONDS)
    assert sample(m, "bybit_dcp_invalid_values_total", account="acct", field="X-Bapi-Limit-Reset-Timestamp") is None


def test_rate_limit_reset_reads_the_header_as_documented():
    from exporter.bybit.sanity import rate_limit_reset

    now = 1_700_000_000.0
    assert rate_limit_reset("1700000000000", now) == (True, None)  # the current timestamp: not exceeded
    assert rate_limit_reset("1699999999000", now) == (True, None)  # already past
    assert rate_limit_reset("1700000000500", now) == (True, 1_700_000_000.5)  # exceeded: resets in 0.5 s
    assert rate_limit_reset("1800000000000", now) == (True, now + MAX_RATE_LIMIT_WAIT)
    assert rate_limit_reset("soon", now) == (False, None)
