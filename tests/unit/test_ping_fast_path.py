"""The pong's and the ping's fast paths say exactly what the generic ones said."""

from __future__ import annotations

import json

import pytest

from exporter.bybit import messages as m
from exporter.bybit.heartbeat import Heartbeat, PongResult


@pytest.mark.parametrize("req_id", ["0badc0de-ping-1", "x-ping-123456789", "", "a_b.c"])
def test_ping_frame_is_the_encoders_text(req_id: str) -> None:
    assert m.ping_frame(req_id) == json.dumps({"req_id": req_id, "op": "ping"}, separators=(",", ":"))


@pytest.mark.parametrize("req_id", ['a"b', "a\\b", "é", "a\nb"])
def test_ping_frame_escapes_any_other_id(req_id: str) -> None:
    text = m.ping_frame(req_id)
    assert text == json.dumps({"req_id": req_id, "op": "ping"}, separators=(",", ":"))
    assert json.loads(text)["req_id"] == req_id


def test_pong_compares_hashes_and_prints_by_its_fields() -> None:
    a, b = m.Pong("r", 1675418560633, "c"), m.Pong(req_id="r", server_ms=1675418560633, conn_id="c")
    assert a == b and hash(a) == hash(b) and a != m.Pong("r")
    assert repr(a) == "Pong(req_id='r', server_ms=1675418560633, conn_id='c')"
    assert a != ("r", 1675418560633, "c")


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ('{"op":"pong","args":["1675418560633"],"req_id":7,"conn_id":null}', m.Pong(None, 1675418560633, None)),
        ('{"op":"pong","args":[1675418560633.4]}', m.Pong(None, 1675418560633)),
        ('{"op":"pong","args":["soon"]}', m.Invalid("bad_pong", "args[0] is not a sane timestamp in ms")),
        ('{"op":"pong","args":[]}', m.Invalid("bad_pong", "args is not a non-empty list")),
        ('{"op":"pong","args":"1675418560633"}', m.Invalid("bad_pong", "args is not a non-empty list")),
        ('{"op":"pong","topic":"order","data":[]}', m.OrderPush(topic="order", orders=[])),  # a topic wins
        ('{"op":"pong","topic":5}', m.Invalid("bad_topic", "topic is not a string")),
    ],
)
def test_pong_shapes(text: str, frame: m.Frame) -> None:
    assert m.parse_frame(text) == frame


def test_pong_result_compares_by_its_fields() -> None:
    hb = Heartbeat(20.0, 10.0)
    hb.on_connected(0.0)
    hb.on_ping_sent("p", 0.0)
    res = hb.on_pong("p", 0.25, 1_700_000_000_000, wall=1_700_000_000.0)
    assert res == PongResult(rtt=0.25, gap=None, skew=pytest.approx(0.125), matched=True, wall=1_700_000_000.0)
    assert hash(res) == hash(PongResult(res.rtt, res.gap, res.skew, res.matched, res.wall))
    assert repr(res).startswith("PongResult(rtt=0.25, gap=None, skew=")


def test_deadline_is_the_earlier_of_the_next_ping_and_the_oldest_pong_due() -> None:
    hb = Heartbeat(20.0, 10.0)
    assert hb.deadline() is None
    hb.on_connected(0.0)
    assert hb.deadline() == 0.0
    hb.on_ping_sent("a", 0.0)
    assert hb.deadline() == 10.0  # the pong's deadline before the next ping (20)
    hb = Heartbeat(5.0, 10.0)
    hb.on_connected(0.0)
    hb.on_ping_sent("a", 0.0)
    assert hb.deadline() == 5.0
    hb.on_disconnected()
    assert hb.deadline() is None
