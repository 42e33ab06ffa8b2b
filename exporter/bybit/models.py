"""Typed values parsed from Bybit REST bodies (sans-I/O).

Each parser takes what came off the wire and returns typed, range-checked values or raises
ValueError: a success answer without a usable result is an error, never "nothing to report".
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..dcp import ENDPOINT_PATHS, valid_window
from .sanity import timestamp_seconds

SET_DCP_METHOD = "POST"
SET_DCP_PATH = ENDPOINT_PATHS["set_dcp"]
MAX_CURSOR_LENGTH = 1024  # Bybit's cursors are tens of characters; a longer one ends the paging


def set_dcp_request(product: str, window: int) -> tuple[str, str, str]:
    """The request that sets a DCP window: method, path and the exact JSON body sent.

    ``product`` defaults to OPTIONS on Bybit ("`OPTIONS`(default), `DERIVATIVES`, `SPOT`",
    docs/v5/order/dcp.mdx), so it is always named.
    """
    body = json.dumps({"product": product, "timeWindow": int(window)}, separators=(",", ":"))
    return SET_DCP_METHOD, SET_DCP_PATH, body


@dataclass(frozen=True)
class DcpSetting:
    """One entry of ``query-dcp-info``: ``dcpStatus`` and the window (Bybit sends it as a string)."""

    product: str
    status: str
    window: int

    @property
    def on(self) -> bool:
        return self.status.upper() == "ON"


@dataclass(frozen=True)
class Envelope:
    """Bybit's response envelope: ``retCode``, ``retMsg``, ``result`` and the top-level ``time``."""

    code: int
    message: str
    result: object
    time: float | None  # unix seconds; None when absent or not a sane timestamp


def parse_envelope(data: object) -> Envelope:
    """A decoded body -> :class:`Envelope`; ValueError unless it is an object with an integer retCode."""
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    code = data.get("retCode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError("the answer has no integer retCode")
    message = data.get("retMsg")
    return Envelope(
        code=code,
        message=message if isinstance(message, str) else "",
        result=data.get("result"),
        time=timestamp_seconds(data.get("time"), 1000.0),
    )


def parse_server_time(result: object) -> float:
    """``result`` of ``GET /v5/market/time`` -> unix seconds (``timeNano``, else ``timeSecond``)."""
    if isinstance(result, dict):
        for name, per_second in (("timeNano", 1e9), ("timeSecond", 1.0)):
            seconds = timestamp_seconds(result.get(name), per_second)
            if seconds is not None:
                return seconds
    raise ValueError("market/time answer without a sane time")


def parse_dcp_info(result: object) -> dict[str, DcpSetting]:
    """``result`` of ``GET /v5/account/query-dcp-info`` -> settings by product.

    A product Bybit does not list is not enabled; an account without DCP gets an empty
    ``dcpInfos`` list. Anything else (no result, no list, a window outside Bybit's range)
    raises ValueError.
    """
    if not isinstance(result, dict) or not isinstance(result.get("dcpInfos"), list):
        raise ValueError("query-dcp-info result has no dcpInfos list")
    settings: dict[str, DcpSetting] = {}
    for entry in result["dcpInfos"]:
        if not isinstance(entry, dict):
            raise ValueError("dcpInfos entry is not an object")
        product, status = entry.get("product"), entry.get("dcpStatus")
        if not isinstance(product, str) or not isinstance(status, str):
            raise ValueError("dcpInfos entry has no product or dcpStatus")
        window = _window(entry.get("timeWindow"))
        if window is None:
            raise ValueError(f"dcpInfos entry for {product[:40]} has no timeWindow in [3, 300]")
        settings[product] = DcpSetting(product, status, window)
    return settings


def _window(raw: object) -> int | None:
    """Bybit writes the window as a string of digits (an int is accepted too), in [3, 300]."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        return None
    window = int(text)
    return window if valid_window(window) else None


@dataclass(frozen=True)
class OrderPage:
    """One page of ``GET /v5/order/history``: each order carries its category; None at the last page."""

    orders: list[dict]
    next_cursor: str | None


def parse_order_page(result: object, category: str) -> OrderPage:
    """``result`` of an order-history call -> :class:`OrderPage`; ValueError without an order list.

    Bybit names the category once for the page; each order gets its own copy of it. A
    cursor that is not a short string ends the paging.
    """
    if not isinstance(result, dict) or not isinstance(result.get("list"), list):
        raise ValueError("order history result has no list")
    page_category = result.get("category")
    if not isinstance(page_category, str) or not page_category:
        page_category = category
    cursor = result.get("nextPageCursor")
    next_cursor = cursor if isinstance(cursor, str) and 0 < len(cursor) <= MAX_CURSOR_LENGTH else None
    return OrderPage([{"category": page_category, **o} for o in result["list"] if isinstance(o, dict)], next_cursor)


def parse_unified_margin_status(result: object) -> int:
    """``result`` of ``GET /v5/account/info`` -> ``unifiedMarginStatus`` (Bybit sends an integer;
    a string of digits is accepted too); ValueError without one."""
    status = result.get("unifiedMarginStatus") if isinstance(result, dict) else None
    if isinstance(status, str) and status.isascii() and status.isdigit() and len(status) <= 3:
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 1000:
        raise ValueError("account info without an integer unifiedMarginStatus")
    return status
