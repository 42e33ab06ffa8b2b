"""Websocket frame parsing and building (no sockets)."""

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exporter.bybit import messages as m


def test_auth_ack_success_and_failure():
    ok = m.parse_frame('{"success":true,"ret_msg":"","op":"auth","conn_id":"cejreaspqfh3sjdnldmg-p"}')
    assert ok == m.AuthAck(success=True, ret_msg="", conn_id="cejreaspqfh3sjdnldmg-p")
    bad = m.parse_frame('{"success":false,"ret_msg":"Params Error","op":"auth","conn_id":"c1"}')
    assert isinstance(bad, m.AuthAck) and not bad.success and bad.ret_msg == "Params Error"


def test_subscribe_ack_with_req_id_and_failure():
    ok = m.parse_frame('{"success":true,"ret_msg":"","op":"subscribe","conn_id":"c","req_id":"r-subscribe-2"}')
    assert ok == m.SubscribeAck(True, "", "c", "r-subscribe-2")
    bad = m.parse_frame(
        '{"success":false,"ret_msg":"error:handler not found,topic:dcp.future","op":"subscribe","req_id":"r-1"}'
    )
    assert isinstance(bad, m.SubscribeAck) and not bad.success and "dcp.future" in bad.ret_msg


def test_ack_without_boolean_success_is_invalid():
    frame = m.parse_frame('{"success":"yes","op":"auth"}')
    assert isinstance(frame, m.Invalid) and frame.kind == "bad_auth_ack"


def test_private_pong_carries_server_ms():
    frame = m.parse_frame('{"req_id":"p-ping-3","op":"pong","args":["1675418560633"],"conn_id":"c"}')
    assert frame == m.Pong(req_id="p-ping-3", server_ms=1675418560633, conn_id="c")


def test_pong_without_args_and_public_shape():
    assert m.parse_frame('{"op":"pong","req_id":"a"}') == m.Pong(req_id="a")
    public = m.parse_frame('{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping","req_id":"b"}')
    assert public == m.Pong(req_id="b", conn_id="c")


@pytest.mark.parametrize("args", ['["soon"]', "[]", '"123"', "[true]"])
def test_pong_with_bad_args_is_invalid(args):
    frame = m.parse_frame('{"op":"pong","req_id":"a","args":%s}' % args)
    assert isinstance(frame, m.Invalid) and frame.kind == "bad_pong"


def test_order_push():
    order = {"orderId": "1", "category": "linear", "cancelType": "CancelByDCP", "updatedTime": "1672364262474"}
    text = json.dumps({"id": "abc", "topic": "order", "creationTime": 1672364262474, "data": [order]})
    frame = m.parse_frame(text)
    assert frame == m.OrderPush(topic="order", orders=[order], id="abc", creation_time_ms=1672364262474)
    per_category = m.parse_frame(json.dumps({"topic": "order.spot", "data": []}))
    assert isinstance(per_category, m.OrderPush) and per_category.orders == []


# docs/v5/websocket/private/order.mdx, "Stream Example" (abridged to the fields that matter,
# plus ones added since: cumFeeDetail, parentOrderLinkId, an RPI field).
DOCS_ORDER_PUSH = """{
    "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90",
    "topic": "order",
    "creationTime": 1672364262474,
    "data": [
        {
            "symbol": "ETH-30DEC22-1400-C",
            "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020",
            "side": "Sell",
            "orderType": "Market",
            "cancelType": "UNKNOWN",
            "orderStatus": "Filled",
            "createdTime": "1672364262444",
            "updatedTime": "1672364262457",
            "rejectReason": "EC_NoError",
            "category": "option",
            "placeType": "price",
            "smpType": "None",
            "cumFeeDetail": {"USDT": "0.358635"},
            "parentOrderLinkId": "",
            "isRpiOrder": false
        }
    ]
}"""


def test_the_docs_order_push_with_unknown_fields_is_an_order_push():
    frame = m.parse_frame(DOCS_ORDER_PUSH)
    assert isinstance(frame, m.OrderPush) and frame.creation_time_ms == 1672364262474
    (order,) = frame.orders
    assert order["cancelType"] == "UNKNOWN" and order["cumFeeDetail"] == {"USDT": "0.358635"}


def test_the_docs_subscribe_ack_without_req_id_and_unknown_keys_is_an_ack():
    """docs/v5/websocket/wss-authentication.mdx shows the private subscribe ack with no req_id."""
    frame = m.parse_frame('{"success":true,"ret_msg":"","op":"subscribe","conn_id":"c","new_key":[1]}')
    assert frame == m.SubscribeAck(True, "", "c", None)


@pytest.mark.parametrize(
    "text,kind",
    [
        ("not json at all", "not_json"),
        ("[1,2]", "not_object"),
        ('"pong"', "not_object"),
        ("{}", "no_op"),
        ('{"op":"whatever"}', "unknown_op"),
        ('{"topic":"order","data":{"orderId":"1"}}', "bad_order_push"),
        ('{"topic":"order","data":[1]}', "bad_order_push"),
        ('{"topic":"wallet","data":[]}', "unexpected_topic"),
        ('{"topic":7}', "bad_topic"),
    ],
)
def test_malformed_and_unexpected_frames(text, kind):
    frame = m.parse_frame(text)
    assert isinstance(frame, m.Invalid)
    assert frame.kind == kind


def test_binary_frames():
    assert m.parse_frame(b'{"op":"pong","req_id":"a"}') == m.Pong(req_id="a")
    assert m.parse_frame(b"\xff\xfe").kind == "not_utf8"


FRAME_TYPES = (m.AuthAck, m.SubscribeAck, m.UnsubscribeAck, m.Pong, m.OrderPush, m.Invalid)


def not_json(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; JSON has neither


@given(st.one_of(st.text(), st.binary()))
@example("NaN")
@example("-Infinity")
def test_parse_frame_never_raises(data):
    frame = m.parse_frame(data)
    assert isinstance(frame, FRAME_TYPES)
    try:
        decoded = json.loads(data, parse_constant=not_json)
    except (ValueError, RecursionError):  # not UTF-8, or not JSON (NaN and Infinity included)
        assert isinstance(frame, m.Invalid) and frame.kind in ("not_json", "not_utf8")
    else:
        assert frame == m.parse_message(decoded)  # the text is classified by what it decodes to


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_parse_message_never_raises_on_any_json(value):
    frame = m.parse_frame(json.dumps(value))
    assert isinstance(frame, FRAME_TYPES)
    if not isinstance(value, dict):
        assert frame == m.Invalid("not_object", type(value).__name__)


def test_builders():
    assert json.loads(m.auth_frame("r-auth-1", ["key", 123, "sig"])) == {
        "req_id": "r-auth-1",
        "op": "auth",
        "args": ["key", 123, "sig"],
    }
    assert json.loads(m.subscribe_frame("r-subscribe-2", ("order", "dcp.future"))) == {
        "req_id": "r-subscribe-2",
        "op": "subscribe",
        "args": ["order", "dcp.future"],
    }
    assert json.loads(m.ping_frame("r-ping-3")) == {"req_id": "r-ping-3", "op": "ping"}
    with pytest.raises(ValueError):
        m.subscribe_frame("r", ())


def test_req_ids_are_unique():
    ids = m.ReqIds("p")
    got = [ids.next("ping") for _ in range(3)] + [ids.next("auth")]
    assert got == ["p-ping-1", "p-ping-2", "p-ping-3", "p-auth-4"]
