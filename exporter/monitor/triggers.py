"""DCP trigger detection from cancelled orders (sans-I/O: orders and ``now`` in, a result out).

When DCP fires, Bybit cancels every active order of the product with
``cancelType: "CancelByDCP"``. The exporter sees those orders twice over: live on the
``order`` stream and, after its own stream was down, in order history (backfill). Both
paths feed :meth:`TriggerTracker.take`, which

- takes an order as a DCP cancel only with ``cancelType: CancelByDCP`` (in any case) and a
  terminal cancelled ``orderStatus`` (``Cancelled``, ``PartiallyFilledCanceled``,
  ``Deactivated``: see :data:`exporter.dcp.CANCELLED_STATUSES`). One that ended otherwise
  (a ``Filled`` that still carries a cancelType, as when a cancel lost the race to a fill)
  is no DCP cancel and passes silently; one without a usable orderId or category, or with
  an open, missing or undocumented status, is counted as ignored. Other ``cancelType`` values and unknown fields are no concern of this module;
- counts each cancelled ``orderId`` once (memory is bounded: at most ``max_remembered``
  ids, each forgotten after 25 h, longer than the 24 h for which Bybit returns cancelled
  orders in history);
- groups cancels of one product whose ``updatedTime`` lie within ``burst_window`` seconds
  of each other into one burst = one trigger, dated by the burst's first ``updatedTime``.
  Grouping uses Bybit's timestamps, not arrival time, so a late or backfilled order joins
  the burst it belongs to instead of counting a second trigger. An ``updatedTime`` that is
  missing, not a sane timestamp or later than ``now`` + :data:`FUTURE_TOLERANCE_SECONDS` is
  counted as undated and replaced by ``now``: one bad order can never date a trigger in 2100.

The tracker touches no metric and no log: the supervisor records its :class:`Observation`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ..bybit.sanity import timestamp_seconds
from ..dcp import CATEGORY_PRODUCT, is_cancel_by_dcp, is_cancelled_status, is_ended_otherwise

RETENTION_SECONDS = 25 * 3600
FUTURE_TOLERANCE_SECONDS = 300.0  # Bybit's clock may run ahead of ours; not by more than this
MAX_BURSTS_PER_PRODUCT = 1000


@dataclass(frozen=True)
class TriggerEvent:
    """Cancels of one burst seen in one :meth:`TriggerTracker.take` call.

    ``new`` is True when this burst was counted as a trigger now; False when the orders
    joined a burst counted earlier (e.g. the rest of a burst arriving by backfill).
    """

    product: str
    started_at: float  # unix seconds: the burst's first updatedTime
    order_ids: tuple[str, ...]
    categories: tuple[str, ...]
    new: bool


@dataclass(frozen=True)
class Observation:
    """What one batch of orders taught the tracker; empty when it held no new DCP cancel."""

    cancelled: dict[str, int]  # category -> orders counted for the first time
    events: tuple[TriggerEvent, ...]  # bursts touched, oldest first
    last_trigger: dict[str, float]  # product -> its latest trigger's time, where that moved
    ignored: int  # CancelByDCP orders without a usable orderId, category or a status Bybit documents
    undated: int  # DCP cancels whose updatedTime was missing or insane, dated ``now`` instead


class _Burst:
    __slots__ = ("end", "start")

    def __init__(self, t: float) -> None:
        self.start = t
        self.end = t


def _updated_seconds(order: dict, now: float) -> float | None:
    t = timestamp_seconds(order.get("updatedTime"), 1000.0)
    return t if t is not None and t <= now + FUTURE_TOLERANCE_SECONDS else None


class TriggerTracker:
    def __init__(self, *, burst_window: float = 5.0, max_remembered: int = 200_000) -> None:
        if burst_window < 0 or max_remembered < 1:
            raise ValueError("burst_window must be >= 0 and max_remembered >= 1")
        self.burst_window = burst_window
        self.max_remembered = max_remembered
        self._seen: OrderedDict[str, float] = OrderedDict()  # orderId -> local time first seen
        self._bursts: dict[str, list[_Burst]] = {}
        self._last_trigger: dict[str, float] = {}

    def take(self, orders: Iterable[object], now: float) -> Observation:
        """Count the ``CancelByDCP`` orders among ``orders`` seen at ``now`` (unix seconds)."""
        self._expire(now)
        ignored = undated = 0
        fresh: list[tuple[str, float, str, str]] = []  # (product, t, orderId, category)
        for order in orders:
            if not isinstance(order, dict) or not is_cancel_by_dcp(order.get("cancelType")):
                continue
            order_id, category, status = order.get("orderId"), order.get("category"), order.get("orderStatus")
            if is_ended_otherwise(status):
                continue  # a Filled with DCP's cancelType (a cancel that lost the race): no cancel at all
            product = CATEGORY_PRODUCT.get(category) if isinstance(category, str) else None
            if (
                not isinstance(order_id, str)
                or not order_id
                or product is None
                or not isinstance(category, str)
                or not is_cancelled_status(status)
            ):
                ignored += 1
                continue
            if order_id in self._seen:
                continue
            self._remember(order_id, now)
            t = _updated_seconds(order, now)
            if t is None:
                undated += 1
            fresh.append((product, now if t is None else t, order_id, category))
        cancelled = Counter(category for _, _, _, category in fresh)

        # Oldest first, so the grouping of one batch does not depend on its order.
        fresh.sort(key=lambda item: (item[0], item[1]))
        touched: dict[int, tuple[str, _Burst, bool, list[str], list[str]]] = {}
        for product, t, order_id, category in fresh:
            burst, new = self._place(product, t)
            key = id(burst)
            if key not in touched:
                touched[key] = (product, burst, new, [], [])
            touched[key][3].append(order_id)
            if category not in touched[key][4]:
                touched[key][4].append(category)

        events = []
        last_trigger: dict[str, float] = {}
        for product, burst, new, ids, categories in touched.values():
            if burst.start >= self._last_trigger.get(product, float("-inf")) or self._is_latest(product, burst):
                self._last_trigger[product] = burst.start
                last_trigger[product] = burst.start
            events.append(TriggerEvent(product, burst.start, tuple(ids), tuple(categories), new))
        events.sort(key=lambda e: e.started_at)
        return Observation(dict(cancelled), tuple(events), last_trigger, ignored, undated)

    @property
    def remembered(self) -> int:
        return len(self._seen)

    def _place(self, product: str, t: float) -> tuple[_Burst, bool]:
        bursts = self._bursts.setdefault(product, [])
        w = self.burst_window
        for burst in bursts:
            if burst.start - w <= t <= burst.end + w:
                burst.start = min(burst.start, t)
                burst.end = max(burst.end, t)
                return burst, False
        burst = _Burst(t)
        bursts.append(burst)
        if len(bursts) > MAX_BURSTS_PER_PRODUCT:
            bursts.sort(key=lambda b: b.end)
            del bursts[: len(bursts) - MAX_BURSTS_PER_PRODUCT]
        return burst, True

    def _is_latest(self, product: str, burst: _Burst) -> bool:
        # A late order can move the latest burst's start earlier; the gauge follows it.
        return all(other.start <= burst.start for other in self._bursts.get(product, ()))

    def _remember(self, order_id: str, now: float) -> None:
        self._seen[order_id] = now
        while len(self._seen) > self.max_remembered:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        horizon = now - RETENTION_SECONDS
        while self._seen:
            first_id, seen_at = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            del self._seen[first_id]
        for product, bursts in self._bursts.items():
            self._bursts[product] = [b for b in bursts if b.end >= horizon]
