"""The order-history backfill: after the stream reconnects, read the orders it missed while down.

Two parts. The arithmetic (which time range to ask history for, how two gaps merge, which of
the latest closed orders changed since the gap began) is pure: plain functions of their
arguments, tested without a socket. :class:`Backfill` is the thin I/O around it: it pages
through the REST client and hands every page to the trigger path it was given, which counts
each order once whichever source brings it first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..bybit.errors import BybitError
from ..bybit.timeframe import TimeFrame
from ..dcp import CATEGORIES, CLOSED_ORDERS_LISTED, HISTORY_KEPT_MS, ORDERS_PER_PAGE, settle_coins
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("exporter.monitor.account")  # the account's log lines keep their logger name

BACKFILL_MARGIN_SECONDS = 10.0  # read history from a little before the stream went down
BACKFILL_MAX_PAGES = 20  # per category and backfill: 20 x 50 orders
RECENT_CLOSED_PAGES = CLOSED_ORDERS_LISTED // ORDERS_PER_PAGE  # Bybit's latest 500 closed orders: 10 pages

Gap = tuple[float, float]  # (down_since, up_at), local wall-clock seconds
TakeOrders = Callable[[list[dict], str], None]  # (orders, source): the trigger path


class HistoryRest(Protocol):
    """What the backfill needs of :class:`exporter.bybit.rest.RestClient`."""

    async def order_history(
        self, category: str, start_ms: int, end_ms: int, cursor: str | None = None
    ) -> tuple[list[dict], str | None]: ...

    async def open_orders(
        self, category: str, cursor: str | None = None, settle_coin: str | None = None, *, closed: bool = False
    ) -> tuple[list[dict], str | None]: ...


# ---- the arithmetic (pure) ------------------------------------------------------------------


def merge_gaps(pending: Gap | None, gap: Gap) -> Gap:
    """One gap spanning both: a stream that flaps while history is slow asks for one read, not many."""
    if pending is None:
        return gap
    return (min(pending[0], gap[0]), max(pending[1], gap[1]))


def history_range(down_since: float, up_at: float, now: float, margin: float) -> tuple[int, int]:
    """The ``[start_ms, end_ms]`` to read history for: from ``margin`` seconds before the stream
    went down to a second past now (or past ``up_at``, if that is later), and never more than the
    24 h Bybit keeps cancelled orders in history (it refuses ranges over 7 days)."""
    end_ms = int((max(up_at, now) + 1.0) * 1000)
    start_ms = max(int((down_since - margin) * 1000), end_ms - HISTORY_KEPT_MS)
    return start_ms, end_ms


def updated_ms(order: dict) -> float:
    """An order's ``updatedTime`` in ms; one that is not a number counts as new (the tracker checks it)."""
    try:
        return float(str(order.get("updatedTime")))
    except (TypeError, ValueError):
        return float("inf")


def changed_since(page: list[dict], start_ms: int, category: str) -> list[dict]:
    """The orders of one page of latest closed orders updated at or after ``start_ms``, each
    named with its ``category`` (that list does not say it). Older ones were settled before
    the gap and are no trigger of it."""
    return [{**o, "category": category} for o in page if updated_ms(o) >= start_ms]


# ---- the I/O --------------------------------------------------------------------------------


class Backfill:
    """One account's backfill: at most one runs at a time, and a gap reported meanwhile waits merged."""

    def __init__(
        self,
        account: str,
        rest: HistoryRest,
        take_orders: TakeOrders,
        metrics: Metrics,
        *,
        clock: Clock = SYSTEM_CLOCK,
        margin: float = BACKFILL_MARGIN_SECONDS,
        max_pages: int = BACKFILL_MAX_PAGES,
        timeframe: TimeFrame | None = None,
    ) -> None:
        self.account = account
        self.rest = rest
        self.take_orders = take_orders
        self.metrics = metrics
        self.clock = clock
        # The account's offset to Bybit's clock: the window and the filters are in Bybit's time
        # (a host clock an hour ahead would otherwise ask for an hour that has not come yet).
        self.timeframe = timeframe if timeframe is not None else TimeFrame()
        self.margin = margin
        self.max_pages = max_pages
        self.gaps_read = 0
        self._running = False
        self._pending: Gap | None = None  # a gap reported while a backfill ran

    async def run(self, down_since: float, up_at: float) -> int:
        """Read order history for the time the stream was down; return the orders fed to the tracker.

        At most one backfill runs per account. A gap reported meanwhile (the stream flapping
        while history is slow) is merged into one pending gap, which the running backfill reads
        next; the call that reported it returns 0 at once, so nothing queues.
        """
        if self._running:
            self._pending = merge_gaps(self._pending, (down_since, up_at))
            return 0
        self._running = True
        fed = 0
        gap: Gap | None = (down_since, up_at)
        try:
            while gap is not None:
                fed += await self._read_gap(*gap)
                gap, self._pending = self._pending, None
        finally:
            self._running = False
            self._pending = None
        return fed

    async def _read_gap(self, down_since: float, up_at: float) -> int:
        """Two sources, because Bybit does not say whether order history's time range bounds
        ``createdTime`` or ``updatedTime``. Read by update time, history holds every order DCP
        cancelled in the gap; read by creation time, it misses an order that rested for days
        before DCP cancelled it. The latest closed orders (``/v5/order/realtime?openOnly=1``,
        up to 500 per category, not delayed like history) hold that one under either reading.
        The tracker counts each order once, whichever source brings it first. The gap is in
        local wall time; the range asked for and the filter on ``updatedTime`` are in Bybit's."""
        bybit = self.timeframe.bybit
        start_ms, end_ms = history_range(bybit(down_since), bybit(up_at), bybit(self.clock.time()), self.margin)
        fed = 0
        for category in CATEGORIES:
            fed += await self._history(category, start_ms, end_ms)
            fed += await self._recent_closed(category, start_ms)
        self.gaps_read += 1
        log.info(
            "backfilled order history for the stream's downtime",
            extra={"account": self.account, "down_seconds": round(up_at - down_since, 1), "orders": fed},
        )
        return fed

    async def _history(self, category: str, start_ms: int, end_ms: int) -> int:
        """One category's history pages; whatever goes wrong is counted and stops this category only."""
        fed = 0
        cursor: str | None = None
        for _page in range(self.max_pages):
            try:
                orders, cursor = await self.rest.order_history(category, start_ms, end_ms, cursor=cursor)
                self.take_orders(orders, "history")
            except Exception as exc:
                self._failed(category, "order history", exc)
                return fed
            fed += len(orders)
            if not cursor:
                return fed
        log.warning(
            "order-history backfill stopped at the page limit",
            extra={"account": self.account, "category": category, "pages": self.max_pages},
        )
        return fed

    async def _recent_closed(self, category: str, start_ms: int) -> int:
        """The category's latest closed orders (newest updated first) changed since ``start_ms``."""
        fed = 0
        for coin in settle_coins(category):
            cursor: str | None = None
            for _page in range(RECENT_CLOSED_PAGES):
                try:
                    page, cursor = await self.rest.open_orders(category, cursor, settle_coin=coin, closed=True)
                    orders = changed_since(page, start_ms, category)
                    self.take_orders(orders, "recent closed orders")
                except Exception as exc:
                    self._failed(category, "recent closed orders", exc)
                    return fed
                fed += len(orders)
                if not cursor or len(orders) < len(page):  # the rest is older than the gap
                    break
        return fed

    def _failed(self, category: str, source: str, exc: Exception) -> None:
        """Counted; a Bybit error is a warning, anything else a crash with its traceback."""
        self.metrics.backfill_failures.labels(self.account, category).inc()
        fields = {"account": self.account, "category": category, "source": source}
        if isinstance(exc, BybitError):
            log.warning(
                "order-history backfill failed; cancels during the gap may be missed",
                extra=fields | {"code": exc.code, "error": exc.message},
            )
        else:
            log.error(
                "order-history backfill crashed; cancels during the gap may be missed", extra=fields, exc_info=exc
            )
