"""Bybit's Disconnection Protect facts in one place, as pure data: the bottom floor of the exporter.

Everything here is data or a pure check, and this module imports nothing of the project.
Sources are Bybit's V5 documentation; where a fact is our own reading it says so.
"""

from __future__ import annotations

from typing import Final

# Products DCP is set for (``query-dcp-info`` and ``disconnected-cancel-all``). A product
# Bybit does not list is not enabled; ``dcpStatus`` is only ever ``ON``.
PRODUCTS: Final = ("SPOT", "DERIVATIVES", "OPTIONS")

# ``timeWindow`` in whole seconds: default 10, documented range [3, 300].
DEFAULT_WINDOW: Final = 10
MIN_WINDOW: Final = 3
MAX_WINDOW: Final = 300

# Bybit: a new setting takes a while; "query or set again after 10 seconds".
MIN_SETTLE_SECONDS: Final = 10.0

# Order categories, as ``order`` pushes and ``GET /v5/order/history`` name them.
CATEGORIES: Final = ("spot", "linear", "inverse", "option")

# Category -> DCP product. Inferred from the names: Bybit does not state it.
CATEGORY_PRODUCT: Final = {"spot": "SPOT", "linear": "DERIVATIVES", "inverse": "DERIVATIVES", "option": "OPTIONS"}

# Product -> the private topic that makes a connection one of its protected connections.
# Inferred from the names (``dcp.future`` for DERIVATIVES); the bare ``dcp`` is deprecated.
PRODUCT_TOPIC: Final = {"DERIVATIVES": "dcp.future", "SPOT": "dcp.spot", "OPTIONS": "dcp.option"}
TOPIC_PRODUCT: Final = {topic: product for product, topic in PRODUCT_TOPIC.items()}

# The private topic of every order update (``order.<category>`` narrows it to one category).
ORDER_TOPIC: Final = "order"

# ``cancelType`` of an order that DCP cancelled, on the ``order`` stream and in history.
CANCEL_BY_DCP: Final = "CancelByDCP"

# ``orderStatus`` of an order that ended cancelled (``Deactivated``: a conditional order
# cancelled before it triggered). Only these, with CancelByDCP, are DCP cancels.
CANCELLED_STATUSES: Final = frozenset({"Cancelled", "PartiallyFilledCanceled", "Deactivated"})

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
