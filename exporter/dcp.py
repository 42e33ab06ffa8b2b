"""Bybit's Disconnection Protect facts in one place, as pure data: the bottom floor of the exporter.

Everything here is data or a pure check, and this module imports nothing of the project.
Sources are Bybit's V5 documentation, as pages of its docs repository ``bybit-exchange/docs``
(docs/bybit-facts.md lists every fact with its page); where a fact is our own reading it says so.
"""

from __future__ import annotations

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
OPEN_STATUSES: Final = frozenset({"New", "PartiallyFilled", "Untriggered"})
NOT_CANCELLED_CLOSED_STATUSES: Final = frozenset({"Rejected", "Filled", "Triggered"})
_CANCELLED_FOLDED: Final = frozenset(status.casefold() for status in CANCELLED_STATUSES)
_ENDED_OTHERWISE_FOLDED: Final = frozenset(status.casefold() for status in NOT_CANCELLED_CLOSED_STATUSES)


def is_cancel_by_dcp(cancel_type: object) -> bool:
    """``cancelType`` is DCP's, in any case; anything else (``UNKNOWN``, a new value, not a string) is not."""
    return isinstance(cancel_type, str) and cancel_type.casefold() == _CANCEL_BY_DCP_FOLDED


def is_cancelled_status(status: object) -> bool:
    """``orderStatus`` is one of the cancelled terminal statuses (in any case)."""
    return isinstance(status, str) and status.casefold() in _CANCELLED_FOLDED


def is_ended_otherwise(status: object) -> bool:
    """``orderStatus`` is a closed one that is no cancel (``Filled``, ``Rejected``, ``Triggered``), in any case."""
    return isinstance(status, str) and status.casefold() in _ENDED_OTHERWISE_FOLDED


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
