"""Bybit V5 REST shapes and request checks for the simulator.

Pure functions: no sockets and no clock; the caller passes ``now`` in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .accounts import ACTIVE_STATUSES, CANCELLED_LISTED_MS, SimAccount, ms
from .engine import CATEGORIES, PRODUCTS, valid_window
from .signatures import DEFAULT_RECV_WINDOW_MS, rest_string_to_sign

# Bybit does not document which time ``startTime``/``endTime`` of order history bound: the
# simulator can do either, so that a client is tested under both readings.
HISTORY_FILTERS = ("updatedTime", "createdTime")
RECENT_CLOSED_LIMIT = 500  # /v5/order/realtime?openOnly=1: the latest closed orders per category

# The last traded price of every symbol: a fixed market, far enough from the demo's resting orders.
LAST_PRICE = "65000"

MESSAGES = {
    10001: "params error",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10003: "API key is invalid.",
    10004: "error sign! please check your signature generation algorithm",
    10005: "Permission denied, please check your API key permissions.",
    10006: "Too many visits!",
    10010: "Unmatched IP, please check your API key's bound IP addresses.",
    10016: "Server Error.",
    10017: "route not found",
    110001: "order not exists or too late to cancel",
}


class ApiError(Exception):
    """A request refused with a Bybit retCode."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "error")
        super().__init__(f"{code} {self.message}")


def envelope(result: Any = None, *, now: float, code: int = 0, msg: str = "OK", with_result: bool = True) -> dict:
    """Bybit's response envelope; ``with_result=False`` for endpoints documented without one."""
    body: dict[str, Any] = {"retCode": code, "retMsg": msg}
    if with_result:
        body["result"] = {} if result is None else result
    body["retExtInfo"] = {}
    body["time"] = int(now * 1000)
    return body


def error_body(err: ApiError, now: float) -> dict:
    return envelope({}, code=err.code, msg=err.message, now=now)


def server_time_result(now: float) -> dict:
    ns = int(now * 1_000_000_000)
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}


# --- authentication ---------------------------------------------------------------------
def check_timestamp(ts_header: str | None, recv_header: str | None, now: float) -> tuple[int, int]:
    """Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000, else 10002."""
    try:
        ts = int(ts_header or "")
    except ValueError:
        raise ApiError(10002, "invalid request, please check your timestamp") from None
    try:
        recv = int(recv_header) if recv_header else DEFAULT_RECV_WINDOW_MS
    except ValueError:
        raise ApiError(10001, "recv_window is invalid") from None
    server_ms = int(now * 1000)
    if not (server_ms - recv <= ts < server_ms + 1000):
        raise ApiError(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{server_ms}],recv_window[{recv}]",
        )
    return ts, recv


def check_signature(acct: SimAccount, ts: int, recv: int, payload: str, signature: str | None) -> None:
    if not signature:
        raise ApiError(10004, "error sign! missing signature")
    message = rest_string_to_sign(ts, acct.api_key, recv, payload)
    if not acct.verifies(message, signature):
        raise ApiError(10004, f"error sign! origin_string[{message}]")


# --- parameters ---------------------------------------------------------------------------
def parse_set_dcp(body: Any) -> tuple[str, int]:
    """``{"product": ..., "timeWindow": int}``; product defaults to OPTIONS as on Bybit."""
    if not isinstance(body, dict):
        raise ApiError(10001, "params error: body must be a JSON object")
    product = body.get("product", "OPTIONS")
    if product is None or product == "":
        product = "OPTIONS"
    if product not in PRODUCTS:
        raise ApiError(10001, f"params error: product {product!r} is invalid")
    window = body.get("timeWindow")
    if isinstance(window, bool) or not isinstance(window, int):
        raise ApiError(10001, "params error: timeWindow must be an integer")
    if not valid_window(window):
        raise ApiError(10001, "params error: timeWindow must be in [3, 300]")
    return product, window


def require_category(params: dict[str, str]) -> str:
    category = params.get("category")
    if category not in CATEGORIES:
        raise ApiError(10001, "params error: category is invalid" if category else "params error: category is required")
    return category


def parse_limit(params: dict[str, str], default: int = 20) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(10001, "params error: limit is invalid") from None
    if not 1 <= limit <= 50:
        raise ApiError(10001, "params error: limit must be in [1, 50]")
    return limit


def parse_ms(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(10001, f"params error: {name} is invalid") from None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(10001, "params error: cursor is invalid") from None
    if offset < 0:
        raise ApiError(10001, "params error: cursor is invalid")
    return offset


def rest_view(order: dict) -> dict:
    """REST lists carry ``category`` once at the result level, not in each order."""
    return {k: v for k, v in order.items() if k != "category"}


def page(orders: list[dict], category: str, limit: int, cursor: str | None) -> dict:
    offset = decode_cursor(cursor)
    chunk = orders[offset : offset + limit]
    nxt = encode_cursor(offset + limit) if offset + limit < len(orders) else ""
    return {"category": category, "list": [rest_view(o) for o in chunk], "nextPageCursor": nxt}


def filter_orders(orders: list[dict], params: dict[str, str]) -> list[dict]:
    for name in ("symbol", "orderId", "orderLinkId", "orderStatus"):
        value = params.get(name)
        if value:
            orders = [o for o in orders if o.get(name) == value]
    return orders


def order_history(
    acct: SimAccount, params: dict[str, str], now: float, *, by: str = "updatedTime", delay: float = 0.0
) -> dict:
    """Newest first by ``updatedTime``; startTime/endTime bound the field ``by`` (ms). An order
    shows its latest state only ``delay`` seconds after it changed (Bybit: data "may delay");
    cancelled orders are listed for 24 h; a range may span 7 days at most."""
    if by not in HISTORY_FILTERS:
        raise ValueError(f"history filter must be one of {HISTORY_FILTERS}, not {by!r}")
    category = require_category(params)
    limit = parse_limit(params)
    start, end = parse_ms(params, "startTime"), parse_ms(params, "endTime")
    if start is not None and end is not None and start > end:
        raise ApiError(10001, "params error: startTime must not be after endTime")
    if end is None:
        end = int(now * 1000)
    if start is None:
        start = end - 7 * 24 * 3600 * 1000
    if end - start > 7 * 24 * 3600 * 1000:
        raise ApiError(10001, "params error: the time range must not exceed 7 days")
    listed_since = int(now * 1000) - CANCELLED_LISTED_MS
    written_before = int((now - delay) * 1000)
    orders = [
        o
        for o in acct.orders.values()
        if o["category"] == category
        and start <= int(o[by]) <= end
        and int(o["updatedTime"]) <= written_before
        and not (o["orderStatus"] == "Cancelled" and int(o["updatedTime"]) < listed_since)
    ]
    orders = filter_orders(orders, params)
    orders.sort(key=lambda o: (int(o["updatedTime"]), int(o["createdTime"])), reverse=True)
    return page(orders, category, limit, params.get("cursor"))


def open_orders(acct: SimAccount, params: dict[str, str]) -> dict:
    """Active orders, newest created first; with ``openOnly=1`` instead the latest
    :data:`RECENT_CLOSED_LIMIT` closed orders, newest updated first, at once (no delay)."""
    category = require_category(params)
    limit = parse_limit(params)
    if params.get("openOnly") == "1":
        closed = [
            o for o in acct.orders.values() if o["category"] == category and o["orderStatus"] not in ACTIVE_STATUSES
        ]
        closed.sort(key=lambda o: int(o["updatedTime"]), reverse=True)
        orders = filter_orders(closed[:RECENT_CLOSED_LIMIT], params)
    else:
        orders = filter_orders(acct.active_orders((category,)), params)
        orders.sort(key=lambda o: int(o["createdTime"]), reverse=True)
    return page(orders, category, limit, params.get("cursor"))


def parse_create(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ApiError(10001, "params error: body must be a JSON object")
    category = body.get("category")
    if category not in CATEGORIES:
        raise ApiError(10001, "params error: category is invalid")
    symbol = body.get("symbol")
    if not symbol or not isinstance(symbol, str):
        raise ApiError(10001, "params error: symbol is required")
    side = body.get("side")
    if side not in ("Buy", "Sell"):
        raise ApiError(10001, "params error: side is invalid")
    order_type = body.get("orderType", "Limit")
    if order_type not in ("Limit", "Market"):
        raise ApiError(10001, "params error: orderType is invalid")
    qty = str(body.get("qty", ""))
    if not _positive(qty):
        raise ApiError(10001, "params error: qty is invalid")
    price = str(body.get("price", "") or "")
    if order_type == "Limit" and not _positive(price):
        raise ApiError(10001, "params error: price is required for a limit order")
    return {
        "category": category,
        "symbol": symbol,
        "side": side,
        "order_type": order_type,
        "qty": qty,
        "price": price or "0",
        "order_link_id": str(body.get("orderLinkId") or ""),
        "time_in_force": str(body.get("timeInForce") or "GTC"),
    }


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def cancel_order(acct: SimAccount, body: Any, now: float) -> dict:
    """``POST /v5/order/cancel`` by ``orderId`` or ``orderLinkId``: the order, cancelled by the client."""
    if not isinstance(body, dict) or body.get("category") not in CATEGORIES:
        raise ApiError(10001, "params error: category is invalid")
    order_id, link_id = body.get("orderId"), body.get("orderLinkId")
    if not order_id and not link_id:
        raise ApiError(10001, "params error: orderId or orderLinkId is required")
    for order in acct.orders.values():
        if order["category"] == body["category"] and (
            order["orderId"] == order_id or (link_id and order["orderLinkId"] == link_id)
        ):
            if order["orderStatus"] not in ACTIVE_STATUSES:
                break
            order.update(
                orderStatus="Cancelled", cancelType="CancelByUser", leavesQty="0", leavesValue="0", updatedTime=ms(now)
            )
            return order
    raise ApiError(110001)


def tickers(params: dict[str, str]) -> dict:
    category = require_category(params)
    symbol = params.get("symbol")
    if not symbol:
        raise ApiError(10001, "params error: symbol is required")
    return {"category": category, "list": [{"symbol": symbol, "lastPrice": LAST_PRICE}]}
