"""Bybit's Disconnection Protect facts in one place, as pure data: the bottom floor of the exporter.

Everything here is data or a pure check, and this module imports nothing of the project.
Sources are Bybit's V5 documentation, as pages of its docs repository ``bybit-exchange/docs``
(docs/bybit-facts.md lists every fact with its page); where a fact is our own reading it says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Products DCP is set for (``query-dcp-info`` and ``disconnected-cancel-all``). A product
# Bybit does not list is not enabled; ``dcpStatus`` is only ever ``ON``. docs/v5/account/dcp-info.mdx:
# "Only the configured main / sub account can query information from this API. Calling this
# API by an account always returns empty" (an unconfigured account: an empty dcpInfos), and
# "If you only request to activate Spot trading for DCP, the contract and options data will
# not be returned" (a Spot-only account: one row).
PRODUCTS: Final = ("SPOT", "DERIVATIVES", "OPTIONS")

# ``timeWindow`` in whole seconds: default 10, documented range [3, 300]
# (docs/v5/order/dcp.mdx: "The default time window is 10 seconds"; "[3, 300], unit: second").
DEFAULT_WINDOW: Final = 10
MIN_WINDOW: Final = 3
MAX_WINDOW: Final = 300

# Bybit: a new setting takes a while; "query or set again after 10 seconds".
MIN_SETTLE_SECONDS: Final = 10.0

# Order categories, as ``order`` pushes and ``GET /v5/order/history`` name them.
CATEGORIES: Final = ("spot", "linear", "inverse", "option")

# Category -> DCP product. Inferred from the names: Bybit does not state it (docs/v5/account/dcp-info.mdx
# lists "USDT Perpetuals ... Inverse Futures [DERIVATIVES], Spot [SPOT], Options [OPTIONS]").
CATEGORY_PRODUCT: Final = {"spot": "SPOT", "linear": "DERIVATIVES", "inverse": "DERIVATIVES", "option": "OPTIONS"}

# Product -> its categories, whose active orders DCP cancels together: the inverse of the above.
PRODUCT_CATEGORIES: Final = {p: tuple(c for c in CATEGORIES if CATEGORY_PRODUCT[c] == p) for p in PRODUCTS}

# Product -> its first category, the one an order for the product goes in unless it says
# otherwise (linear for DERIVATIVES: USDT perpetuals, Bybit's busiest).
PRODUCT_CATEGORY: Final = {p: categories[0] for p, categories in PRODUCT_CATEGORIES.items()}

# Bybit lists a category's orders (``GET /v5/order/realtime``) per settle coin where it asks
# for one (linear: one of symbol, baseCoin or settleCoin is required); the others at once.
SETTLE_COINS: Final = {"linear": ("USDT", "USDC")}

# Orders per page of order history and of the realtime list (``limit`` 1-50), and how many of
# the latest closed orders the realtime list holds per category (``openOnly=1``).
ORDERS_PER_PAGE: Final = 50
CLOSED_ORDERS_LISTED: Final = 500

# How far back order history keeps cancelled orders: 24 h (other closed orders 7 days).
HISTORY_KEPT_MS: Final = 24 * 3600 * 1000

# Product -> the private topic that makes a connection one of its protected connections.
# Inferred from the names (``dcp.future`` for DERIVATIVES): docs/v5/websocket/private/dcp.mdx
# lists the topics ``dcp.future``, ``dcp.spot``, ``dcp.option`` and no mapping; the bare
# ``dcp`` is deprecated (docs/changelog/v5.mdx, 2024-06-18).
PRODUCT_TOPIC: Final = {"DERIVATIVES": "dcp.future", "SPOT": "dcp.spot", "OPTIONS": "dcp.option"}
TOPIC_PRODUCT: Final = {topic: product for product, topic in PRODUCT_TOPIC.items()}

# The private topic of every order update (``order.<category>`` narrows it to one category).
ORDER_TOPIC: Final = "order"

# ``cancelType`` of an order that DCP cancelled, on the ``order`` stream and in history
# ("CancelByDCP: cancelled by DCP triggering", docs/v5/enum.mdx#canceltype, for every
# category and for options). Compared without regard to case (:func:`is_cancel_by_dcp`):
# the changelog spelled one value of the same enum ``cancelBySmp`` where the enum page says
# ``CancelBySmp`` (docs/changelog/v5.mdx), so a ``cancelbydcp`` is the same value. The
# enum keeps growing and the order stream's own example shows ``"UNKNOWN"``
# (docs/v5/websocket/private/order.mdx): any other value is simply not DCP's.
CANCEL_BY_DCP: Final = "CancelByDCP"
_CANCEL_BY_DCP_FOLDED: Final = CANCEL_BY_DCP.casefold()

# ``orderStatus`` (docs/v5/enum.mdx#orderstatus). Open: ``New``, ``PartiallyFilled``,
# ``Untriggered``. Closed: ``Rejected``, ``PartiallyFilledCanceled`` (spot only), ``Filled``,
# ``Cancelled`` (in derivatives it may have an executed qty), ``Triggered`` (an instant
# between Untriggered and New), ``Deactivated`` ("UTA: Spot tp/sl order, conditional order,
# OCO order are cancelled before they are triggered").
# Only the cancelled ones, with CancelByDCP, are DCP cancels. ``Deactivated`` is one of them:
# DCP cancels every active order of the product, an untriggered conditional or TP/SL order
# included, and such an order ends ``Deactivated``, not ``Cancelled``. A ``Filled`` never
# is, whatever its cancelType: the order stream's page says a second ``Filled`` message may
# carry ``cancelType=CancelByUser`` when a cancel arrived as the order traded
# (docs/v5/websocket/private/order.mdx); so ``cancelType`` alone never means cancelled.
CANCELLED_STATUSES: Final = frozenset({"Cancelled", "PartiallyFilledCanceled", "Deactivated"})
NOT_CANCELLED_CLOSED_STATUSES: Final = frozenset({"Rejected", "Filled", "Triggered"})
_CANCELLED_FOLDED: Final = frozenset(status.casefold() for status in CANCELLED_STATUSES)
_ENDED_OTHERWISE_FOLDED: Final = frozenset(status.casefold() for status in NOT_CANCELLED_CLOSED_STATUSES)


def is_cancel_by_dcp(cancel_type: object) -> bool:
    """``cancelType`` is DCP's, in any case; anything else (``UNKNOWN``, a new value, not a string) is not."""
    return isinstance(cancel_type, str) and cancel_type.casefold() == _CANCEL_BY_DCP_FOLDED


def is_cancelled_status(status: object) -> bool:
    """``orderStatus`` is one of the cancelled terminal statuses (in any case)."""
    return isinstance(status, str) and status.casefold() in _CANCELLED_FOLDED


def is_dcp_cancel(order: Mapping[str, object]) -> bool:
    """An order DCP cancelled: ``CancelByDCP`` on a cancelled terminal status (both in any case)."""
    return is_cancel_by_dcp(order.get("cancelType")) and is_cancelled_status(order.get("orderStatus"))


def is_ended_otherwise(status: object) -> bool:
    """``orderStatus`` is a closed one that is no cancel (``Filled``, ``Rejected``, ``Triggered``), in any case."""
    return isinstance(status, str) and status.casefold() in _ENDED_OTHERWISE_FOLDED


# ``orderStatus`` of an order that is closed and never rests again: filled, rejected or cancelled
# (``Triggered`` is closed only for an instant, on its way to ``New``).
FINAL_STATUSES: Final = CANCELLED_STATUSES | (NOT_CANCELLED_CLOSED_STATUSES - {"Triggered"})

# ``max_active_time`` of a private connection: 30 s to 600 s (default 10 min); a connection
# without ping, pong or data for that long is cut by Bybit.
SHORTEST_MAX_ACTIVE_TIME: Final = 30

# An empty dcpInfos list: not an error, most likely an account DCP is not offered to.
NOT_AVAILABLE: Final = (
    "DCP not available or not enabled for this account (Bybit offers DCP to institutional accounts only)"
)

# What the exporter may do when Bybit reports another window than the desired one.
REASSERT_POLICIES: Final = ("off", "dry-run", "enforce")

# Why re-assertion stands down (``bybit_dcp_reassert_blocked{reason}``): Bybit refused the key
# (for the account), or another writer undoes the sets (for the product).
REASSERT_BLOCK_REASONS: Final = ("credentials", "contended")


def valid_window(window: object) -> bool:
    """A window Bybit accepts: a whole number of seconds in [3, 300] (a bool is not one)."""
    return isinstance(window, int) and not isinstance(window, bool) and MIN_WINDOW <= window <= MAX_WINDOW


def settle_coins(category: str) -> tuple[str | None, ...]:
    """The settle coins to list a category's orders by (:data:`SETTLE_COINS`); ``(None,)``: all at once."""
    return SETTLE_COINS.get(category, (None,))


# ``unifiedMarginStatus`` of ``GET /v5/account/info`` (Bybit's ``acct-mode.mdx``): the account
# mode. "pro" is the same mode with a faster API path.
ACCOUNT_MODES: Final = {1: "classic", 3: "UTA 1.0", 4: "UTA 1.0 pro", 5: "UTA 2.0", 6: "UTA 2.0 pro"}
UTA_1: Final = frozenset({3, 4})

# Bybit (``acct-mode.mdx``, Set Disconnect Cancel All): under UTA 2.0 "inverse trading orders
# will be cancelled when dcp is triggered"; under UTA 1.0 they "will not be cancelled".
UNPROTECTED_UNDER_UTA_1: Final = ("inverse",)


def account_mode_name(status: int) -> str:
    """``UTA 2.0 (5)``; a value Bybit does not document is shown as its number."""
    name = ACCOUNT_MODES.get(status)
    return f"{name} ({status})" if name else f"unknown ({status})"


def unprotected_categories(status: int, enabled: frozenset[str] | set[str]) -> dict[str, bool]:
    """The categories whose protection depends on the account mode, each True where DCP leaves it
    unprotected: an inverse order under UTA 1.0 while DCP is enabled for DERIVATIVES (its product).

    Only categories the mode decides are listed (today ``inverse``); where DERIVATIVES has no DCP
    at all nothing is "left unprotected by the mode", so the value is False."""
    return {c: status in UTA_1 and CATEGORY_PRODUCT[c] in enabled for c in UNPROTECTED_UNDER_UTA_1}


# Bybit V5 REST calls, by the short ``endpoint`` label every metric and error carries -> path.
# The one table: the REST client calls these paths and the metrics name these labels.
ENDPOINT_PATHS: Final = {
    "server_time": "/v5/market/time",
    "query_dcp_info": "/v5/account/query-dcp-info",
    "set_dcp": "/v5/order/disconnected-cancel-all",
    "order_history": "/v5/order/history",
    "open_orders": "/v5/order/realtime",
    "account_info": "/v5/account/info",  # the account mode (unifiedMarginStatus)
    "api_key_info": "/v5/user/query-api",  # the key's permissions, IPs and expiry (the doctor's)
    # The drill's calls: one canary order, the book it must be alone on, the price it keeps away from.
    "create_order": "/v5/order/create",
    "cancel_order": "/v5/order/cancel",
    "tickers": "/v5/market/tickers",
}
# The calls every watched account makes (the poll, the enforcer, the backfill): their request
# and failure series exist at 0 from the start, so the first failure is an increase.
MONITOR_ENDPOINTS: Final = ("server_time", "query_dcp_info", "set_dcp", "order_history", "open_orders", "account_info")

# Where a reading of Bybit's clock comes from (exporter.bybit.timeframe): GET /v5/market/time,
# or a pong's args[0]. The label values of bybit_dcp_clock_skew_refused_total.
CLOCK_SOURCES: Final = ("server_time", "pong")
