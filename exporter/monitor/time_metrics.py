"""The exporter's ears on an account's time frame: a refused reading of Bybit's clock, counted and logged.

:class:`~exporter.bybit.timeframe.TimeFrame` refuses a reading of Bybit's clock that is too far
off (a pong's ``args[0]`` minutes from the server time, a server time a day from ours) and tells
its ``on_refused``; this is the exporter's: ``bybit_dcp_clock_skew_refused_total{account,source}``
and a warning (the alert ``BybitDcpClockSkewRefused`` watches the counter).
"""

from __future__ import annotations

import logging

from ..metrics import Metrics

log = logging.getLogger("exporter.monitor.account")  # the account's log lines keep their logger name


class ClockSkewRefusals:
    """One account's ``on_refused``."""

    def __init__(self, metrics: Metrics, account: str) -> None:
        self.metrics = metrics
        self.account = account

    def __call__(self, source: str, skew: float) -> None:
        self.metrics.clock_skew_refused.labels(self.account, source).inc()
        log.warning(
            "a reading of Bybit's clock was refused as too far off; the time offset is unchanged",
            extra={"account": self.account, "source": source, "skew_seconds": round(skew, 3)},
        )
