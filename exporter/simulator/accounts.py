"""Simulated Bybit accounts: credentials, DCP settings, orders and what clients did.

Pure: no I/O, no clock, no randomness; the caller passes ``now`` and new order ids in.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from . import signatures
from .engine import PRODUCTS

DEFAULT_DCP = {"DERIVATIVES": 10, "SPOT": 10}
# A read-write key of a UTA 2.0 account that can trade every product (Bybit's permission names).
DEFAULT_PERMISSIONS = {
    "ContractTrade": ["Order", "Position"],
    "Spot": ["SpotTrade"],
    "Wallet": ["AccountTransfer"],
    "Options": ["OptionsTrade"],
    "Derivatives": ["DerivativesTrade"],
    "Exchange": [],
    "Earn": [],
    "NFT": [],
    "BlockTrade": [],
    "Affiliate": [],
    "CopyTrading": [],
}
DEFAULT_UNIFIED_MARGIN_STATUS = 5  # UTA 2.0
# Bybit: a key bound to no IP address expires after 90 days.
UNBOUND_KEY_DAYS = 90
ACTIVE_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered", "Created"})
# What clients did is recorded for tests to assert on; a simulator left running for days
# (a demo, a drill) keeps only the newest records.
RECORD_LIMIT = 10_000
# Cancelled orders are listed for 24 hours only; older ones are dropped.
CANCELLED_LISTED_MS = 24 * 3600 * 1000


T = TypeVar("T")


class Records(list[T]):
    """A list (so tests compare it with plain lists) that keeps only the newest records."""

    def append(self, item: T) -> None:
        super().append(item)
        if len(self) > 2 * RECORD_LIMIT:
            del self[: len(self) - RECORD_LIMIT]  # trimmed in halves: amortised O(1)


def masked_key(api_key: str) -> str:
    """An API key with its middle hidden (``ABC***YZ``), for anything the simulator shows."""
    return "***" if len(api_key) <= 6 else f"{api_key[:3]}***{api_key[-2:]}"


def new_order_id(rng: random.Random) -> str:
    """A UUID, as Bybit's order ids are, drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def ms(t: float) -> str:
    return str(int(t * 1000))


@dataclass
class SimAccount:
    """One account (UID) with one API key. Read its fields from tests to assert what happened."""

    api_key: str
    api_secret: str | None
    rsa_public_key_pem: str | None = None
    name: str = ""
    dcp: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DCP))
    # What GET /v5/user/query-api and GET /v5/account/info answer for this account's key.
    read_only: int = 0  # 1: every POST is refused with 10005
    permissions: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_PERMISSIONS.items()}
    )
    ips: list[str] = field(default_factory=lambda: ["*"])  # bound addresses; "*" = any (calls from others: 10010)
    expired_at: str | None = None  # ISO time; None: 90 days ahead for an unbound key, "" for a bound one
    unified_margin_status: int = DEFAULT_UNIFIED_MARGIN_STATUS
    orders: dict[str, dict] = field(default_factory=dict)
    ws_frames: Records[tuple[str, dict]] = field(default_factory=Records)
    rest_calls: Records[dict] = field(default_factory=Records)
    set_dcp_calls: Records[tuple[str, int]] = field(default_factory=Records)
    triggers: Records[dict] = field(default_factory=Records)
    # (effective_at, product, window) set through REST, waiting for the settle delay
    pending_dcp: list[tuple[float, str, int]] = field(default_factory=list)
    _topics: set[str] = field(default_factory=set)

    def __repr__(self) -> str:  # never show the secret
        return f"SimAccount(api_key={self.api_key!r}, name={self.name!r}, dcp={self.dcp!r})"

    def verifies(self, message: str, signature: str) -> bool:
        """True if ``signature`` signs ``message`` with this account's key: hex HMAC for a
        secret, base64 RSA-SHA256 for an account registered with a public key."""
        if self.rsa_public_key_pem:
            return signatures.verify_rsa_base64(self.rsa_public_key_pem, message, signature)
        if self.api_secret is None:
            return False
        return signatures.verify_hmac_hex(self.api_secret, message, signature)

    def writes(self) -> list[dict]:
        """Every REST call that could change something on Bybit (each POST), refused ones included."""
        return [c for c in self.rest_calls if c["method"] == "POST"]

    @property
    def ip_bound(self) -> bool:
        """The key is bound to addresses (no ``*``): calls from any other are refused with 10010."""
        return bool(self.ips) and "*" not in self.ips

    def allows_ip(self, address: str | None) -> bool:
        return not self.ip_bound or address in self.ips

    def key_info(self, now: float) -> dict:
        """The ``result`` of ``GET /v5/user/query-api`` for this key (fields as Bybit documents them)."""
        expired_at = self.expired_at
        if expired_at is None:
            expired_at = "" if self.ip_bound else _iso(now + UNBOUND_KEY_DAYS * 86400)
        return {
            "id": "13770661",
            "note": self.name,
            "apiKey": self.api_key,
            "readOnly": self.read_only,
            "secret": "",
            "permissions": {k: list(v) for k, v in self.permissions.items()},
            "ips": list(self.ips),
            "type": 1,
            "deadlineDay": _days_until(expired_at, now),
            "expiredAt": expired_at,
            "createdAt": _iso(now - 86400),
            "unified": 0,
            "uta": 0 if self.unified_margin_status == 1 else 1,
            "userID": 24617703,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": self.rsa_public_key_pem or "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def account_info(self, now: float) -> dict:
        """The ``result`` of ``GET /v5/account/info`` (``dcpStatus`` and ``timeWindow`` are deprecated, always OFF / 0)."""
        return {
            "unifiedMarginStatus": self.unified_margin_status,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": ms(now - 86400),
            "dcpStatus": "OFF",
            "timeWindow": 0,
            "smpGroup": 0,
        }

    def subscribed_topics(self) -> set[str]:
        """Every topic ever successfully subscribed on this account's connections."""
        return set(self._topics)

    def note_topic(self, topic: str) -> None:
        self._topics.add(topic)

    # --- DCP settings -----------------------------------------------------------------
    def apply_due_settings(self, now: float) -> None:
        """Windows set through REST take effect once their settle delay has passed."""
        due = [p for p in self.pending_dcp if p[0] <= now]
        if not due:
            return
        self.pending_dcp = [p for p in self.pending_dcp if p[0] > now]
        for _, product, window in sorted(due):
            self.dcp[product] = window

    def request_window(self, product: str, window: int, now: float, delay: float) -> None:
        self.set_dcp_calls.append((product, window))
        if delay <= 0:
            self.dcp[product] = window
        else:
            self.pending_dcp.append((now + delay, product, window))

    def dcp_infos(self, now: float) -> list[dict]:
        self.apply_due_settings(now)
        return [
            {"product": p, "dcpStatus": "ON", "timeWindow": str(w)}
            for p, w in sorted(self.dcp.items(), key=lambda kv: PRODUCTS.index(kv[0]))
        ]

    # --- orders -----------------------------------------------------------------------
    def new_order(
        self,
        now: float,
        *,
        order_id: str,
        category: str,
        symbol: str,
        side: str,
        qty: str,
        price: str,
        order_type: str = "Limit",
        order_link_id: str = "",
        time_in_force: str = "GTC",
    ) -> dict:
        created = ms(now)
        order: dict[str, Any] = {
            "category": category,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "blockTradeId": "",
            "symbol": symbol,
            "price": price,
            "qty": qty,
            "side": side,
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": "New",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": "",
            "leavesQty": qty,
            "leavesValue": _mul(qty, price),
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "timeInForce": time_in_force,
            "orderType": order_type,
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": created,
            "updatedTime": created,
        }
        self._drop_unlisted(now)
        self.orders[order["orderId"]] = order
        return order

    def _drop_unlisted(self, now: float) -> None:
        """Forget cancelled orders no list shows any more, so a long run does not grow forever."""
        cutoff = int(now * 1000) - CANCELLED_LISTED_MS
        gone = [i for i, o in self.orders.items() if o["orderStatus"] == "Cancelled" and int(o["updatedTime"]) < cutoff]
        for order_id in gone:
            del self.orders[order_id]

    def active_orders(self, categories: tuple[str, ...] | None = None) -> list[dict]:
        return [
            o
            for o in self.orders.values()
            if o["orderStatus"] in ACTIVE_STATUSES and (categories is None or o["category"] in categories)
        ]

    def cancel_by_dcp(self, categories: tuple[str, ...], now: float) -> list[dict]:
        cancelled = []
        for order in self.active_orders(categories):
            order.update(
                orderStatus="Cancelled",
                cancelType="CancelByDCP",
                leavesQty="0",
                leavesValue="0",
                updatedTime=ms(now),
            )
            cancelled.append(order)
        return cancelled


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_until(expired_at: str, now: float) -> int:
    try:
        at = datetime.strptime(expired_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0
    return max(0, int((at - now) // 86400))


def _mul(qty: str, price: str) -> str:
    try:
        return format(float(qty) * float(price), "g")
    except ValueError:
        return "0"
