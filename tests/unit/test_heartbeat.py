"""Heartbeat bookkeeping with a plain-number clock (no sockets, no sleeps)."""

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.bybit.heartbeat import Heartbeat


def test_ping_due_immediately_after_connect_then_every_interval():
    hb = Heartbeat(ping_interval=20, pong_timeout=10)
    assert not hb.ping_due(0) and hb.deadline() is None
    hb.on_connected(100.0)
    assert hb.ping_due(100.0)
    hb.on_ping_sent("p1", 100.0)
    assert not hb.ping_due(119.9)
    assert hb.ping_due(120.0)


def test_rtt_matches_req_id_and_deadline():
    hb = Heartbeat(20, 10)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    assert hb.deadline() == 10.0  # pong timeout comes before the next ping
    res = hb.on_pong("p1", 0.05, server_ms=None)
    assert res.rtt == pytest.approx(0.05) and res.matched
    assert res.gap is None  # first pong ever
    assert hb.last_pong == 0.05
    assert hb.deadline() == 20.0
    assert not hb.timed_out(1000.0)  # nothing outstanding


def test_unknown_pong_counts_as_liveness_but_no_rtt():
    hb = Heartbeat(20, 10)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    res = hb.on_pong("someone-else", 1.0)
    assert res.rtt is None and not res.matched
    assert hb.last_pong == 1.0
    assert "p1" in hb.outstanding


def test_pong_timeout():
    hb = Heartbeat(20, 10)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    assert not hb.timed_out(9.99)
    assert hb.timed_out(10.0)


def test_timeout_judged_by_oldest_unanswered_ping():
    hb = Heartbeat(ping_interval=3, pong_timeout=5)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    hb.on_ping_sent("p2", 3.0)
    assert hb.deadline() == 5.0
    assert hb.timed_out(5.0)


def test_answer_to_newer_ping_drops_older_lost_pings():
    hb = Heartbeat(ping_interval=3, pong_timeout=5)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    hb.on_ping_sent("p2", 3.0)
    res = hb.on_pong("p2", 3.1)
    assert res.rtt == pytest.approx(0.1)
    assert hb.outstanding == {}
    assert not hb.timed_out(7.0)


def test_late_pong_of_a_closed_connection_gives_no_rtt():
    hb = Heartbeat(20, 10)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    hb.on_disconnected()
    assert hb.deadline() is None and not hb.connected
    assert hb.on_pong("p1", 30.0).rtt is None


def test_gap_between_pongs_spans_reconnects():
    hb = Heartbeat(20, 10)
    hb.on_connected(0.0)
    hb.on_ping_sent("p1", 0.0)
    hb.on_pong("p1", 0.01)
    hb.on_disconnected()  # stream went down
    hb.on_connected(42.0)  # and came back
    hb.on_ping_sent("p2", 42.0)
    res = hb.on_pong("p2", 42.02)
    assert res.gap == pytest.approx(42.01)
    assert hb.last_pong == pytest.approx(42.02)  # the ping gap at scrape time counts from here


def test_clock_skew_from_server_ms():
    hb = Heartbeat(20, 10)
    hb.on_connected(1000.0)
    hb.on_ping_sent("p1", 1000.0)
    # server is 2.5 s ahead; midpoint of the round trip is 1000.1
    res = hb.on_pong("p1", 1000.2, server_ms=int((1000.1 + 2.5) * 1000))
    assert res.skew == pytest.approx(2.5, abs=0.002)
    assert hb.last_skew == res.skew


def test_wall_time_only_for_last_pong_and_skew():
    hb = Heartbeat(20, 10)
    hb.on_connected(5.0)  # monotonic seconds
    hb.on_ping_sent("p1", 5.0)
    # the wall clock reads 1000.2 at the pong; Bybit is 2.5 s ahead of the round trip's midpoint
    res = hb.on_pong("p1", 5.2, server_ms=int((1000.1 + 2.5) * 1000), wall=1000.2)
    assert res.rtt == pytest.approx(0.2) and res.skew == pytest.approx(2.5, abs=0.002)
    assert hb.last_pong == 1000.2
    hb.on_ping_sent("p2", 25.0)
    # the wall clock is stepped back an hour: the gap between pongs still comes from the monotonic clock
    res = hb.on_pong("p2", 25.1, wall=1000.3 - 3600)
    assert res.rtt == pytest.approx(0.1) and res.gap == pytest.approx(19.9)
    assert hb.last_pong == 1000.3 - 3600


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        Heartbeat(0, 10)
    with pytest.raises(ValueError):
        Heartbeat(20, -1)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["connect", "disconnect", "ping", "pong", "pong_unknown", "tick"]),
        st.floats(min_value=0, max_value=30, allow_nan=False),
    ),
    max_size=60,
)


@settings(max_examples=examples(200), deadline=None)
@given(_ops, st.floats(min_value=0.1, max_value=30), st.floats(min_value=0.1, max_value=30))
def test_invariants_under_any_event_sequence(ops, interval, timeout):
    hb = Heartbeat(interval, timeout)
    now = 1000.0
    n = 0
    sent: list[str] = []
    for op, step in ops:
        now += step
        if op == "connect":
            hb.on_connected(now)
        elif op == "disconnect":
            hb.on_disconnected()
        elif op == "ping" and hb.connected:
            n += 1
            sent.append(f"p{n}")
            hb.on_ping_sent(f"p{n}", now)
        elif op == "pong" and sent:
            res = hb.on_pong(sent[-1], now, server_ms=int(now * 1000))
            assert res.rtt is None or 0 <= res.rtt <= now
        elif op == "pong_unknown":
            assert hb.on_pong("nobody", now).rtt is None
        assert hb.connected == (hb.deadline() is not None)
        if hb.timed_out(now) or hb.ping_due(now):
            assert hb.deadline() <= now  # the stream's wait never sleeps past a due action
        if hb.deadline() is not None and hb.deadline() <= now:
            assert hb.timed_out(now) or hb.ping_due(now)  # and never spins with nothing to do
        if hb.last_pong is not None:
            assert hb.last_pong <= now  # so the ping gap is never negative
