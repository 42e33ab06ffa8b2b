"""The account mode beside the DCP poll: ``GET /v5/account/info`` every few minutes.

Bybit's account mode (``unifiedMarginStatus``) decides what DCP cancels: under UTA 1.0 it does
not cancel inverse orders, under UTA 2.0 it does (``acct-mode.mdx``). The mode changes rarely
(an upgrade), so it is read at most every :data:`ACCOUNT_MODE_INTERVAL` seconds, after a DCP
poll; the supervisor calls :meth:`AccountMode.after_poll` with each poll's answer.

- ``bybit_dcp_account_unified_margin_status{account}``: the last value read (kept while a read
  fails: the mode does not change with a failed call).
- ``bybit_dcp_unprotected_category{account,category}``: per category the mode decides (inverse),
  1 while DCP is enabled for its product and the mode leaves it unprotected, else 0. Exported only
  while both the mode and the DCP state are known (the DCP poll's failure removes it, as it
  removes ``bybit_dcp_enabled``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..bybit.errors import BybitError, hint
from ..bybit.models import DcpSetting, parse_unified_margin_status
from ..bybit.rest import RestClient
from ..dcp import UNPROTECTED_UNDER_UTA_1, account_mode_name, unprotected_categories
from ..metrics import Metrics
from ..runtime.clock import Clock

log = logging.getLogger(__name__)

ACCOUNT_MODE_INTERVAL = 300.0  # seconds between reads of the account mode


class AccountMode:
    def __init__(
        self, name: str, rest: RestClient, metrics: Metrics, clock: Clock, interval: float = ACCOUNT_MODE_INTERVAL
    ) -> None:
        self.name = name
        self.rest = rest
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self.status: int | None = None
        self._enabled: frozenset[str] | None = None
        self._due: float | None = None  # monotonic time of the next read; None: at the next poll
        self._failure: str | None = None

    async def after_poll(self, reported: Mapping[str, DcpSetting] | None) -> None:
        """After a DCP poll (``reported`` None when it failed): read the mode when due, export both."""
        self._enabled = None if reported is None else frozenset(p for p, s in reported.items() if s.on)
        now = self.clock.monotonic()
        if self._due is None or now >= self._due:
            self._due = now + self.interval
            await self._read()
        self._export()

    async def _read(self) -> None:
        try:
            status = parse_unified_margin_status(await self.rest.account_info())
        except BybitError as exc:  # counted by the client; logged when it starts or changes
            if self._failure != exc.code:
                log.warning(
                    "account mode read failed",
                    extra={"account": self.name, "code": exc.code, "error": exc.message, "hint": hint(exc.code)},
                )
            self._failure = exc.code
            return
        except ValueError:
            self.metrics.invalid_values.labels(self.name, "unifiedMarginStatus").inc()
            return
        self._failure = None
        if status != self.status:
            log.info("account mode", extra={"account": self.name, "mode": account_mode_name(status)})
        self.status = status
        self.metrics.unified_margin_status.labels(self.name).set(status)

    def _export(self) -> None:
        if self.status is None or self._enabled is None:
            for category in UNPROTECTED_UNDER_UTA_1:
                self.metrics.unprotected_category.remove(self.name, category)
            return
        for category, unprotected in unprotected_categories(self.status, self._enabled).items():
            self.metrics.unprotected_category.labels(self.name, category).set(1 if unprotected else 0)
