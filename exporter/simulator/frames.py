"""Private-websocket frames in Bybit's shapes, and topic validation.

Pure functions: the caller passes the time (``now``) and the random source (``rng``) in.
"""

from __future__ import annotations

import random
import re
import string

from .engine import CATEGORIES, TOPIC_PRODUCT

ORDER_TOPICS = ("order", *(f"order.{c}" for c in CATEGORIES))
KNOWN_TOPICS = frozenset(ORDER_TOPICS) | frozenset(TOPIC_PRODUCT)
DEFAULT_MAX_ACTIVE = 600.0


def new_conn_id(rng: random.Random) -> str:
    """Looks like Bybit's ``cejreaspqfh3sjdnldmg-p``."""
    body = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(20))
    return f"{body}-{rng.choice(string.ascii_lowercase)}{rng.choice(string.digits)}"


def new_push_id(rng: random.Random) -> str:
    """20 hex digits, like the ``id`` of Bybit's pushes."""
    return f"{rng.getrandbits(80):020x}"


def with_req_id(frame: dict, req_id) -> dict:
    if req_id is not None:
        frame["req_id"] = req_id
    return frame


def op_result(op: str, conn_id: str, req_id=None, *, ok: bool = True, message: str = "") -> dict:
    return with_req_id({"success": ok, "ret_msg": message, "op": op, "conn_id": conn_id}, req_id)


def pong(conn_id: str, now: float, req_id=None) -> dict:
    frame: dict = {}
    if req_id is not None:
        frame["req_id"] = req_id
    frame.update({"op": "pong", "args": [str(int(now * 1000))], "conn_id": conn_id})
    return frame


def order_push(topic: str, orders: list[dict], *, now: float, push_id: str) -> dict:
    return {
        "id": push_id,
        "topic": topic,
        "creationTime": int(now * 1000),
        "data": [dict(o) for o in orders],
    }


def topic_wants(topic: str, category: str) -> bool:
    return topic == "order" or topic == f"order.{category}"


def check_topics(args, held=()) -> str | None:
    """Return Bybit's error message for a bad subscribe request on a connection that already
    holds the topics ``held``, or None if it is fine. ``order`` and ``order.<category>`` do not
    mix, neither in one request nor across requests."""
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        return "error:args must be a non-empty list of topics"
    for topic in args:
        if topic not in KNOWN_TOPICS:
            return f"error:handler not found,topic:{topic}"
    orders = [t for t in args if t in ORDER_TOPICS]
    if "order" in orders and len(orders) > 1:
        return "error:order and order.<category> cannot be subscribed in one request"
    existing = [t for t in held if t in ORDER_TOPICS]
    if orders and existing and "order" in orders + existing and set(orders) != set(existing):
        return "error:order and order.<category> cannot be subscribed together"
    return None


_ACTIVE = re.compile(r"^(\d+)(s|m)?$")


def parse_max_active_time(value: str | None) -> float | None:
    """``30s``..``600s`` (or ``1m``..``10m``); None when absent or out of range."""
    if not value:
        return None
    m = _ACTIVE.match(value.strip())
    if not m:
        return None
    seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 1)
    return float(seconds) if 30 <= seconds <= 600 else None
