"""The trigger path: orders from the stream or the backfill, through the tracker, into metrics and the log.

One per account, so the stream's pushes and the backfill's pages meet one
:class:`TriggerTracker`, which counts each order once whichever source brings it first.
The tracker decides; this records what it decided (:func:`record_triggers`) and logs each
trigger with the source that brought it. Time comes from the clock it is given, in Bybit's
time frame (the account's :class:`~exporter.bybit.timeframe.TimeFrame`).
"""

from __future__ import annotations

import logging

from ..bybit.timeframe import TimeFrame
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .projections import record_triggers
from .triggers import TriggerEvent, TriggerTracker

log = logging.getLogger("exporter.monitor.account")  # the account's log lines keep their logger name


class TriggerPath:
    def __init__(
        self, account: str, metrics: Metrics, *, clock: Clock = SYSTEM_CLOCK, timeframe: TimeFrame | None = None
    ) -> None:
        self.account = account
        self.metrics = metrics
        self.clock = clock
        # Orders carry Bybit's times: the tracker's ``now`` (the bound on an order's updatedTime,
        # a trigger's time) is Bybit's too.
        self.timeframe = timeframe if timeframe is not None else TimeFrame()
        self.tracker = TriggerTracker()

    def take(self, orders: list[dict], source: str) -> None:
        """Feed orders to the tracker; record and log what it saw."""
        observation = self.tracker.take(orders, self.timeframe.bybit(self.clock.time()))
        record_triggers(self.metrics, self.account, observation)
        for event in observation.events:
            self._log_trigger(event, source=source)

    def take_pushed(self, orders: list[dict]) -> None:
        """The stream's ``on_orders``: orders pushed on the ``order`` topic."""
        self.take(orders, "stream")

    def _log_trigger(self, event: TriggerEvent, *, source: str) -> None:
        log.warning(
            "DCP trigger: orders cancelled by Disconnection Protect" if event.new else "more orders of a DCP trigger",
            extra={
                "account": self.account,
                "product": event.product,
                "orders": len(event.order_ids),
                "categories": ",".join(event.categories),
                "trigger_time": event.started_at,
                "source": source,
            },
        )
