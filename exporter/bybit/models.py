"""Typed values parsed from Bybit REST bodies (sans-I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass

SET_DCP_METHOD = "POST"
SET_DCP_PATH = "/v5/order/disconnected-cancel-all"


def set_dcp_request(product: str, window: int) -> tuple[str, str, str]:
    """The request that sets a DCP window: method, path and the exact JSON body sent.

    ``product`` defaults to OPTIONS on Bybit, so it is always named.
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


def parse_dcp_info(result: object) -> dict[str, DcpSetting]:
    """``result`` of ``GET /v5/account/query-dcp-info`` -> settings by product.

    A product Bybit does not list is not enabled; an account without DCP gets an empty list.
    Raises ValueError on a body that does not have Bybit's shape.
    """
    if not isinstance(result, dict) or not isinstance(result.get("dcpInfos", []), list):
        raise ValueError("query-dcp-info result has no dcpInfos list")
    settings: dict[str, DcpSetting] = {}
    for entry in result.get("dcpInfos") or []:
        if not isinstance(entry, dict):
            raise ValueError("dcpInfos entry is not an object")
        product = entry.get("product")
        if not isinstance(product, str):
            raise ValueError("dcpInfos entry has no product")
        try:
            window = int(str(entry.get("timeWindow", "")).strip())
        except ValueError:
            raise ValueError(f"dcpInfos entry for {product} has a non-integer timeWindow") from None
        settings[product] = DcpSetting(product, str(entry.get("dcpStatus", "")), window)
    return settings
