"""Drills on a schedule inside the exporter: one per ``drill.every`` seconds, recorded as metrics.

Off unless an observer account has ``drill:`` in its configuration (guardians cannot drill:
their own ``dcp.*`` connection keeps DCP from firing). The first drill runs one interval after
start, so a restart loop never turns into a drill loop.
"""

from __future__ import annotations

import logging
import secrets

from ..bybit.rest import RestClient
from ..config import AccountConfig, DrillSettings
from ..dcp import PRODUCT_CATEGORY
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .run import run_drill
from .verdict import CANARY_LINK_PREFIX, DrillReport

log = logging.getLogger(__name__)


class ScheduledDrill:
    def __init__(self, account: AccountConfig, rest: RestClient, metrics: Metrics, *, clock: Clock = SYSTEM_CLOCK):
        assert account.drill is not None and account.drill.every is not None
        self.account = account
        self.settings: DrillSettings = account.drill
        self.every: float = account.drill.every
        self.rest = rest
        self.metrics = metrics
        self.clock = clock
        self.reports: list[DrillReport] = []  # the last few, newest last (the landing page and tests)

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.every)
            await self.run_once()

    async def run_once(self) -> DrillReport:
        settings, name, product = self.settings, self.account.name, self.settings.product
        report = DrillReport(
            account=name,
            environment=self.account.environment,
            product=product,
            category=PRODUCT_CATEGORY[product],
            symbol=settings.symbol,
            cut=settings.cut,
            tolerance_seconds=settings.tolerance,
        )
        link_id = CANARY_LINK_PREFIX + secrets.token_hex(8)
        try:
            await run_drill(self.account, settings, self.rest, self.clock, report, link_id=link_id)
        finally:
            self.metrics.drill_last_success.labels(name, product).set(1 if report.passed else 0)
            self.metrics.drill_last_run.labels(name, product).set(self.clock.time())
            if report.trigger_delay_seconds is not None:
                self.metrics.drill_trigger_delay.labels(name, product).set(report.trigger_delay_seconds)
            self.reports = [*self.reports[-9:], report]
            log.log(
                logging.INFO if report.passed else logging.WARNING,
                "DCP drill " + ("passed" if report.passed else "failed"),
                extra={
                    "account": name,
                    "product": product,
                    "outcome": report.outcome,
                    "trigger_delay_seconds": report.trigger_delay_seconds,
                    "canary": report.canary_cleanup,
                    "detail": report.message,
                },
            )
        return report
