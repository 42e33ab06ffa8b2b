"""The private stream's conversation without a socket: frames and times in, frames and events out."""

from __future__ import annotations

import json
import random

import pytest

from exporter.bybit import messages as msg
from exporter.bybit.heartbeat import PongResult
from exporter.bybit.session import (
    PING_DUE,
    AckTimeout,
    Connected,
    Disconnected,
    InvalidFrame,
    PongTimeout,
    Reconnect,
    Refused,
    Started,
    StreamSession,
)
from exporter.bybit.timeframe import TimeFrame
from exporter.secrets import Secret

WALL = 1_700_000_000.0


def session(**kw: float) -> StreamSession:
    params: dict = dict(ping_interval=20.0, pong_timeout=10.0, handshake_timeout=5.0, rng=random.Random(4))
    params.update(kw)
    return StreamSession("key", Secret("secret"), ("order", "dcp.future"), **params)


def live(s: StreamSession, now: float = 0.0, wall: float = WALL) -> Connected:
    """Open, auth and subscribe ``s`` at ``now``; the Connected event."""
    s.opened(now, wall)
    sub = s.receive(msg.AuthAck(True), now, wall)
    assert isinstance(sub, str)
    connected = s.receive(msg.SubscribeAck(True), now, wall)
    assert isinstance(connected, Connected)
    return connected


def sent(frame: object) -> dict:
    assert isinstance(frame, str)
    return json.loads(frame)


def test_start_hands_out_the_last_pong_or_the_start_time():
    s = session()
    started = s.start(WALL)
    assert isinstance(started, Started) and started.at == WALL
    assert started.last_pong_or_start() == WALL
    live(s)
    s.ping_frame()
    s.ping_written(0.0)
    s.receive(msg.Pong(s._ping_req, None), 0.1, WALL + 7)
    assert started.last_pong_or_start() == WALL + 7


def test_auth_frame_expires_ahead_by_bybits_clock():
    s = session(auth_expiry=5.0)
    frame = sent(s.opened(0.0, WALL))
    assert frame["op"] == "auth" and frame["args"][0] == "key"
    assert frame["args"][1] == int((WALL + 5.0) * 1000)
    assert "secret" not in json.dumps(frame)
    assert s.timeframe.server_time(WALL + 2.0, WALL, WALL)  # Bybit's server time: 2 s ahead
    assert sent(s.opened(0.0, WALL))["args"][1] == int((WALL + 7.0) * 1000)
    assert s.timeframe.server_time(WALL - 3.0, WALL, WALL)  # behind: Bybit's now + 5 s, no later
    assert sent(s.opened(0.0, WALL))["args"][1] == int((WALL + 2.0) * 1000)


def pong_claiming(s: StreamSession, bybit: float, now: float = 1.0, wall: float = WALL) -> PongResult:
    """A ping answered at once by a pong whose ``args[0]`` says Bybit's clock reads ``bybit``."""
    s.ping_frame()
    s.ping_written(now)
    pong = s.receive(msg.Pong(s._ping_req, round(bybit * 1000)), now, wall)
    assert isinstance(pong, PongResult)
    return pong


def test_a_pong_refines_the_auth_expiry_only_within_the_bound_of_bybits_server_time():
    refused: list[tuple[str, float]] = []
    s = session(auth_expiry=5.0, timeframe=TimeFrame(lambda source, skew: refused.append((source, skew))))
    s.timeframe.server_time(WALL + 60.0, WALL, WALL)  # the host is a minute behind Bybit
    live(s)
    pong_claiming(s, WALL + 61.0)  # a pong refines it: 61 s
    assert s.timeframe.offset == pytest.approx(61.0) and not refused
    assert sent(s.opened(0.0, WALL))["args"][1] == int((WALL + 66.0) * 1000)
    live(s)
    year_2096 = 3_976_214_400.0
    pong = pong_claiming(s, year_2096)  # forged: Bybit's clock in 2096
    assert pong.skew == pytest.approx(year_2096 - WALL)  # the heartbeat still reports what it read
    assert refused == [("pong", pytest.approx(year_2096 - WALL))]
    assert s.timeframe.offset == pytest.approx(61.0)  # never applied
    assert sent(s.opened(0.0, WALL))["args"][1] <= int((WALL + 61.0 + 5.0) * 1000)


def test_the_stream_asks_for_bybits_time_first_and_again_after_a_refused_auth():
    s = session()
    assert s.needs_time()  # nothing read yet: a clock seconds behind would have every auth refused
    s.timeframe.server_time(WALL, WALL, WALL)
    s.time_read()
    assert not s.needs_time()
    s.opened(0.0, WALL)
    s.receive(msg.AuthAck(False, "expired"), 0.0, WALL)
    assert s.needs_time()  # the clock may have moved: read it again before the next auth
    s.time_read()
    assert not s.needs_time()


def test_auth_then_subscribe_then_live_with_every_topic_in_one_request():
    s = session()
    auth = sent(s.opened(0.0, WALL))
    assert s.state == "auth" and not s.live
    sub = sent(s.receive(msg.AuthAck(True, req_id=auth["req_id"]), 0.5, WALL))
    assert sub["op"] == "subscribe" and sub["args"] == ["order", "dcp.future"]
    assert s.state == "subscribe" and s.ack_deadline == 5.5
    connected = s.receive(msg.SubscribeAck(True, req_id=sub["req_id"]), 1.0, WALL + 1)
    assert isinstance(connected, Connected)
    assert s.live and s.ack_deadline is None
    assert connected.down_since is None and connected.at == WALL + 1  # the first connection: no backfill
    assert connected.topics == ("order", "dcp.future") and connected.products == ("DERIVATIVES",)
    assert s.beat(1.0) is PING_DUE  # the first ping goes at once


def test_an_ack_of_another_request_is_not_taken_for_ours():
    s = session()
    s.opened(0.0, WALL)
    other = s.receive(msg.AuthAck(True, req_id="someone-else"), 0.1, WALL)
    assert isinstance(other, InvalidFrame) and other.kind == "unexpected_AuthAck"
    assert s.state == "auth"


@pytest.mark.parametrize(("op", "reason"), [("auth", "auth_failed"), ("subscribe", "subscribe_failed")])
def test_a_refusal_ends_the_connection_with_its_reason(op, reason):
    s = session()
    s.opened(0.0, WALL)
    if op == "subscribe":
        s.receive(msg.AuthAck(True), 0.0, WALL)
        out = s.receive(msg.SubscribeAck(False, ret_msg="x" * 500), 0.0, WALL)
    else:
        out = s.receive(msg.AuthAck(False, ret_msg="Request not authorized"), 0.0, WALL)
    assert isinstance(out, Refused) and out.op == op and out.reason == reason
    assert len(out.ret_msg) <= 200 and out.topics == ("order", "dcp.future")
    assert s.state == "closed"


def test_acknowledgements_are_awaited_for_the_handshake_timeout_each():
    s = session(handshake_timeout=5.0)
    s.opened(10.0, WALL)
    assert s.ack_overdue(14.999) is None
    late = s.ack_overdue(15.0)
    assert isinstance(late, AckTimeout) and late.waiting_for == "AuthAck" and late.reason == "error"
    s.opened(20.0, WALL)
    s.receive(msg.AuthAck(True), 22.0, WALL)
    assert s.ack_overdue(26.9) is None  # the subscribe ack has 5 s of its own from the auth ack
    late = s.ack_overdue(27.0)
    assert isinstance(late, AckTimeout) and late.waiting_for == "SubscribeAck"
    live(s)
    assert s.ack_overdue(1000.0) is None  # live: nothing awaited


def test_auth_success_resets_the_auth_attempts_and_a_pong_resets_the_backoff():
    s = session(backoff_base=1.0, backoff_cap=60.0, auth_backoff_base=10.0, auth_backoff_cap=300.0)
    s.opened(0.0, WALL)
    s.receive(msg.AuthAck(False), 0.0, WALL)
    first = s.reconnect("auth_failed")
    assert 5.0 <= first.delay <= 10.0 and s.auth_attempt == 1 and s.attempt == 1
    second = s.reconnect("auth_failed")
    assert 10.0 <= second.delay <= 20.0 and s.auth_attempt == 2  # equal jitter, doubling
    for _ in range(3):
        assert s.reconnect("error").delay <= 2.0**s.attempt  # full jitter up to 2**attempt
    assert s.attempt == 5
    live(s)
    assert s.auth_attempt == 0
    s.disconnected(WALL)
    assert s.reconnect("closed").delay <= 2.0**5  # no pong on that connection: still backing off
    live(s)
    s.ping_frame()
    s.ping_written(0.0)
    pong = s.receive(msg.Pong(s._ping_req, None), 0.05, WALL)
    assert isinstance(pong, PongResult) and pong.rtt == pytest.approx(0.05)
    s.disconnected(WALL)
    again = s.reconnect("pong_timeout")
    assert isinstance(again, Reconnect) and again.reason == "pong_timeout"
    assert again.delay <= 1.0 and s.attempt == 1  # a healthy connection: afresh


def test_reconnect_delays_come_from_the_injected_rng():
    a, b = session(rng=random.Random(9)), session(rng=random.Random(9))
    assert [a.reconnect("error").delay for _ in range(5)] == [b.reconnect("error").delay for _ in range(5)]


def test_ping_pong_and_timeout_on_the_grid():
    s = session(ping_interval=20.0, pong_timeout=10.0, ping_phase=3.0)
    live(s, now=100.0)
    assert s.beat(100.0) is PING_DUE
    ping = sent(s.ping_frame())
    assert ping["op"] == "ping"
    s.ping_written(100.0)
    assert s.beat(100.0) is None and s.next_ping() == 103.0  # the account's slot: phase + k * interval
    assert s.pong_deadline() == 110.0  # the pong watch's deadline
    pong = s.receive(msg.Pong(ping["req_id"], round((WALL + 1) * 1000)), 100.2, WALL + 0.2)
    assert isinstance(pong, PongResult) and pong.matched and pong.wall == WALL + 0.2
    assert s.pong_deadline() is None and s.pong_overdue(110.0) is None  # answered: nothing to watch
    assert pong.rtt == pytest.approx(0.2) and pong.skew == pytest.approx(0.9)
    assert s.beat(102.9) is None and s.beat(103.0) is PING_DUE
    s.ping_frame()
    s.ping_written(103.0)
    assert s.pong_deadline() == 113.0 and s.next_ping() == 123.0
    assert s.beat(112.9) is None and s.pong_overdue(112.9) is None
    overdue = s.pong_overdue(113.0)
    assert isinstance(overdue, PongTimeout) and overdue.pong_timeout == 10.0
    timeout = s.beat(113.0)
    assert isinstance(timeout, PongTimeout) and timeout.reason == "pong_timeout" and timeout.pong_timeout == 10.0


def test_down_since_is_the_last_frame_read_while_live_and_comes_with_the_next_connection():
    s = session()
    live(s, wall=WALL)
    s.receive(msg.OrderPush("order", [{"orderId": "1"}]), 1.0, WALL + 30)
    gone = s.disconnected(WALL + 45)
    assert isinstance(gone, Disconnected) and gone.products == ("DERIVATIVES",)
    assert s.down_since == WALL + 30 and not s.live and not s.heartbeat.connected
    s.reconnect("closed")
    s.opened(50.0, WALL + 50)
    s.receive(msg.AuthAck(True), 50.0, WALL + 50)  # frames before the subscription are no sign of data
    back = s.receive(msg.SubscribeAck(True), 51.0, WALL + 51)
    assert isinstance(back, Connected) and back.down_since == WALL + 30 and back.at == WALL + 51
    s.disconnected(WALL + 60)
    s.disconnected(WALL + 99)  # a second notice (the stream's end) changes nothing
    assert s.down_since == WALL + 51


def test_order_pushes_are_handed_on_as_they_came():
    s = session()
    live(s)
    push = msg.OrderPush("order", [{"orderId": "7"}])
    assert s.receive(push, 0.0, WALL) is push


def test_each_kind_of_invalid_frame_is_first_once():
    s = session()
    live(s)
    kinds = [msg.Invalid("not_json", "x"), msg.Invalid("not_json", "y"), msg.Invalid("bad_pong", "z")]
    out = [s.receive(frame, 0.0, WALL) for frame in kinds]
    assert all(isinstance(e, InvalidFrame) for e in out)
    assert [(e.kind, e.first) for e in out] == [("not_json", True), ("not_json", False), ("bad_pong", True)]
    late_ack = s.receive(msg.SubscribeAck(True), 0.0, WALL)  # acks on a live connection are unexpected
    assert isinstance(late_ack, InvalidFrame) and late_ack.kind == "unexpected_SubscribeAck" and late_ack.first


def test_frames_during_the_handshake_are_handled_too():
    s = session()
    s.opened(0.0, WALL)
    push = msg.OrderPush("order", [])
    assert s.receive(push, 0.0, WALL) is push
    bad = s.receive(msg.Invalid("no_op"), 0.0, WALL)
    assert isinstance(bad, InvalidFrame) and bad.first
    assert s.state == "auth" and s.last_frame_at is None
