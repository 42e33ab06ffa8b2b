"""Sans-I/O helpers: rate limiter windows, topic checks, max_active_time parsing, set-dcp params."""

import pytest

from exporter.simulator import Simulator, frames
from exporter.simulator.ratelimit import RateLimiter
from exporter.simulator.rest import ApiError, parse_set_dcp


def test_rate_limiter_budget_per_key_and_path_and_reset():
    rl = RateLimiter({"/dcp": 2}, default=10)
    a = [rl.hit("k", "/dcp", 100.0) for _ in range(3)]
    assert [s.allowed for s in a] == [True, True, False]
    assert [s.remaining for s in a] == [1, 0, 0]
    assert a[0].headers() == {"X-Bapi-Limit": "2", "X-Bapi-Limit-Status": "1", "X-Bapi-Limit-Reset-Timestamp": "101000"}
    assert rl.hit("other", "/dcp", 100.1).allowed  # per key
    assert rl.hit("k", "/else", 100.1).limit == 10  # per path
    assert rl.hit("k", "/dcp", 101.0).allowed  # new window


@pytest.mark.parametrize(
    "args,error",
    [
        (["order"], None),
        (["order.spot", "order.linear", "dcp.future"], None),
        (["dcp.spot", "dcp.option"], None),
        (["dcp.xyz"], "error:handler not found,topic:dcp.xyz"),
        (["position"], "error:handler not found,topic:position"),
        (["order", "order.spot"], "error:order and order.<category> cannot be subscribed in one request"),
    ],
)
def test_topic_checks(args, error):
    assert frames.check_topics(args) == error


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("30s", 30.0),
        ("600s", 600.0),
        ("1m", 60.0),
        ("10m", 600.0),
        ("29s", None),
        ("601s", None),
        ("x", None),
        (None, None),
    ],
)
def test_max_active_time(value, seconds):
    assert frames.parse_max_active_time(value) == seconds


def test_pong_shape():
    assert frames.pong("c-1", 1675418560.633, "r1") == {
        "req_id": "r1",
        "op": "pong",
        "args": ["1675418560633"],
        "conn_id": "c-1",
    }


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"timeWindow": 10}, ("OPTIONS", 10)),
        ({"product": "SPOT", "timeWindow": 3}, ("SPOT", 3)),
        ({"product": "DERIVATIVES", "timeWindow": 300}, ("DERIVATIVES", 300)),
    ],
)
def test_set_dcp_params_ok(body, expected):
    assert parse_set_dcp(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"timeWindow": 2},
        {"timeWindow": 301},
        {"timeWindow": "10"},
        {"timeWindow": 10.5},
        {"timeWindow": True},
        {},
        {"product": "FUTURES", "timeWindow": 10},
    ],
)
def test_set_dcp_params_refused_with_10001(body):
    with pytest.raises(ApiError) as exc:
        parse_set_dcp(body)
    assert exc.value.code == 10001


@pytest.mark.parametrize("window", [True, False, 2, 301, 10.0, "10"])
def test_windows_outside_bybits_range_are_refused_everywhere(window):
    sim = Simulator()
    with pytest.raises(ValueError):
        sim.add_account("k", "s", dcp={"SPOT": window})
    sim.add_account("k", "s")
    with pytest.raises(ValueError):
        sim.set_dcp("k", "SPOT", window)
    with pytest.raises(ApiError):
        parse_set_dcp({"timeWindow": window})


@pytest.mark.parametrize(
    "held,args,error",
    [
        ({"order"}, ["order"], None),
        ({"order.spot", "dcp.spot"}, ["order.spot"], None),
        ({"order.spot"}, ["order.linear"], None),
        ({"dcp.spot"}, ["order"], None),
        ({"order"}, ["order.spot"], "error:order and order.<category> cannot be subscribed together"),
        ({"order.spot"}, ["order"], "error:order and order.<category> cannot be subscribed together"),
        ({"order"}, ["order", "order.spot"], "error:order and order.<category> cannot be subscribed in one request"),
    ],
)
def test_topic_checks_against_the_topics_a_connection_holds(held, args, error):
    assert frames.check_topics(args, held) == error
