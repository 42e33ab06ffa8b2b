"""Bybit V5 private-websocket frames: typed values in, JSON text out (sans-I/O).

:func:`parse_frame` turns one received text frame into a small typed value and never
raises: anything it cannot make sense of becomes :class:`Invalid` with a short, stable
``kind`` so the stream can count it, log each kind once and carry on. The builders
produce the frames the exporter sends (``auth``, ``subscribe``, ``ping``), each with a
``req_id`` so acknowledgements and pongs can be matched to their requests.

Shapes (from Bybit's V5 websocket documentation, docs/v5/websocket/wss-authentication.mdx):
  auth ack       {"success":true,"ret_msg":"","op":"auth","conn_id":"..."}
  subscribe ack  {"success":true,"ret_msg":"","op":"subscribe","conn_id":"...","req_id":"..."}
                 (the page's private example has no ``req_id``: it is optional here)
  pong           {"req_id":"...","op":"pong","args":["1675418560633"],"conn_id":"..."}
  order push     {"id":"...","topic":"order","creationTime":1672364262474,"data":[{...}, ...]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ..dcp import ORDER_TOPIC
from .sanity import load_json, timestamp_seconds


@dataclass(frozen=True)
class Ack:
    """Bybit's answer to a request op; the subclasses say which op it answers."""

    success: bool
    ret_msg: str = ""
    conn_id: str | None = None
    req_id: str | None = None


class AuthAck(Ack):
    """Acknowledgement of ``auth``."""


class SubscribeAck(Ack):
    """Acknowledgement of a ``subscribe`` request; Bybit answers a whole request at once."""


class UnsubscribeAck(Ack):
    """Acknowledgement of ``unsubscribe``."""


class Pong:
    """A heartbeat answer. ``server_ms`` is Bybit's clock (``args[0]``) when present.

    A plain class with ``__slots__``, not a frozen dataclass like the other frames: one comes
    per ping per account, and a frozen dataclass sets each field through ``object.__setattr__``.
    Nothing changes it after it is made; it compares and prints by its fields like the others."""

    __slots__ = ("conn_id", "req_id", "server_ms")

    def __init__(self, req_id: str | None = None, server_ms: int | None = None, conn_id: str | None = None) -> None:
        self.req_id = req_id
        self.server_ms = server_ms
        self.conn_id = conn_id

    def __eq__(self, other: object) -> bool:
        if type(other) is not Pong:
            return NotImplemented
        return (self.req_id, self.server_ms, self.conn_id) == (other.req_id, other.server_ms, other.conn_id)

    def __hash__(self) -> int:
        return hash((self.req_id, self.server_ms, self.conn_id))

    def __repr__(self) -> str:
        return f"Pong(req_id={self.req_id!r}, server_ms={self.server_ms!r}, conn_id={self.conn_id!r})"


@dataclass(frozen=True)
class OrderPush:
    """One ``order`` push; ``orders`` are the raw order dicts with Bybit's field names."""

    topic: str
    orders: list[dict] = field(default_factory=list)
    id: str | None = None
    creation_time_ms: int | None = None


@dataclass(frozen=True)
class Invalid:
    """A frame that could not be understood. ``kind`` is short and stable (for log-once)."""

    kind: str
    detail: str = ""


Frame = AuthAck | SubscribeAck | UnsubscribeAck | Pong | OrderPush | Invalid
_ACK_TYPES: dict[str, type[AuthAck | SubscribeAck | UnsubscribeAck]] = {
    "auth": AuthAck,
    "subscribe": SubscribeAck,
    "unsubscribe": UnsubscribeAck,
}

_EXCERPT = 120


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ack_fields(obj: dict) -> tuple[bool, str, str | None, str | None] | None:
    success = obj.get("success")
    if not isinstance(success, bool):
        return None
    ret_msg = obj.get("ret_msg", "")
    return (
        success,
        ret_msg if isinstance(ret_msg, str) else "",
        _opt_str(obj.get("conn_id")),
        _opt_str(obj.get("req_id")),
    )


_BAD_PONG_TIME = Invalid("bad_pong", "args[0] is not a sane timestamp in ms")


def _parse_server_ms(args: Any) -> int | Invalid | None:
    if args is None:
        return None
    if not isinstance(args, list) or not args:
        return Invalid("bad_pong", "args is not a non-empty list")
    seconds = timestamp_seconds(args[0], 1000.0)
    if seconds is None:  # Infinity, 1e400, text, a time in the wrong unit: no RTT or skew from it
        return _BAD_PONG_TIME
    return round(seconds * 1000.0)


def parse_message(obj: Any) -> Frame:
    """Classify an already-decoded JSON value (see :func:`parse_frame`).

    The pong is looked at first (a topic still wins over an op, as for any frame): it comes
    once per ping per account, and its usual shape, ``args`` one timestamp, is read inline."""
    if not isinstance(obj, dict):
        return Invalid("not_object", type(obj).__name__)

    get = obj.get
    topic = get("topic")
    op = get("op")
    if op == "pong" and topic is None:
        args = get("args")
        server_ms: int | Invalid | None = None
        if args is not None:
            if type(args) is list and args:
                seconds = timestamp_seconds(args[0], 1000.0)
                server_ms = _BAD_PONG_TIME if seconds is None else round(seconds * 1000.0)
            else:
                server_ms = _parse_server_ms(args)
            if type(server_ms) is Invalid:
                return server_ms
        req_id, conn_id = get("req_id"), get("conn_id")
        return Pong(
            req_id if isinstance(req_id, str) else None,
            cast(int | None, server_ms),
            conn_id if isinstance(conn_id, str) else None,
        )

    if topic is not None:
        if not isinstance(topic, str):
            return Invalid("bad_topic", "topic is not a string")
        # Order pushes come on `order` (every category) or `order.<category>`.
        if topic == ORDER_TOPIC or topic.startswith(ORDER_TOPIC + "."):
            data = get("data")
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                return Invalid("bad_order_push", "data is not a list of objects")
            created = timestamp_seconds(get("creationTime"), 1000.0)
            created_ms = None if created is None else round(created * 1000.0)
            return OrderPush(topic=topic, orders=list(data), id=_opt_str(get("id")), creation_time_ms=created_ms)
        return Invalid("unexpected_topic", topic[:_EXCERPT])

    if op == "ping" and get("ret_msg") == "pong":
        # The public-stream shape of a pong; accepted so a pong is never miscounted.
        return Pong(req_id=_opt_str(get("req_id")), server_ms=None, conn_id=_opt_str(get("conn_id")))
    if op in ("auth", "subscribe", "unsubscribe"):
        fields = _ack_fields(obj)
        if fields is None:
            return Invalid(f"bad_{op}_ack", "success is not a boolean")
        return _ACK_TYPES[op](*fields)
    if op is None:
        return Invalid("no_op", "neither op nor topic")
    return Invalid("unknown_op", op[:_EXCERPT] if isinstance(op, str) else type(op).__name__)


def parse_frame(data: str | bytes) -> Frame:
    """Parse one received frame. Never raises: malformed input gives :class:`Invalid`."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return Invalid("not_utf8", "binary frame")
    try:
        obj = load_json(data)
    except ValueError:
        return Invalid("not_json", _excerpt(data))
    return parse_message(obj)


# ---- frames the exporter sends ---------------------------------------------------------


# One encoder for every frame: ``json.dumps`` with any option builds a new one per call, a
# noticeable share of a ping's cost at a thousand accounts.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]*")


def _dump(obj: dict) -> str:
    return _ENCODER.encode(obj)


def auth_frame(req_id: str, args: Sequence[Any]) -> str:
    """``args`` is ``[api_key, expires_ms, signature]`` from ``signing.ws_auth_args``."""
    return _dump({"req_id": req_id, "op": "auth", "args": list(args)})


def subscribe_frame(req_id: str, topics: Sequence[str]) -> str:
    if not topics:
        raise ValueError("subscribe needs at least one topic")
    return _dump({"req_id": req_id, "op": "subscribe", "args": list(topics)})


def ping_frame(req_id: str) -> str:
    """Written out, not encoded: one a ping per account, and the encoder's call is most of
    its cost. Byte for byte what ``_dump`` writes for an id that needs no escaping in JSON
    (:class:`ReqIds` makes only those: letters, digits and dashes); any other is encoded."""
    if _PLAIN_ID.fullmatch(req_id) is None:
        return _dump({"req_id": req_id, "op": "ping"})
    return '{"req_id":"' + req_id + '","op":"ping"}'


class ReqIds:
    """Unique request ids per stream: ``<prefix>-<op>-<n>`` (n counts up forever)."""

    def __init__(self, prefix: str = "x") -> None:
        self._prefix = prefix
        self._n = 0

    def next(self, op: str) -> str:
        self._n += 1
        return f"{self._prefix}-{op}-{self._n}"
