"""Re-assertion I/O shell: turns :class:`Reasserter` decisions into metrics, logs and REST calls.

Every rule (when to set, how often, when to stop) lives in :mod:`.reassert`; this module only
carries it out. ``take_poll`` never blocks: in enforce mode it starts at most one background
task per product, which sends the set, waits the settle time, and verifies by querying.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Protocol

from ..bybit.errors import BybitError
from ..bybit.models import DcpSetting, set_dcp_request
from ..dcp import MIN_SETTLE_SECONDS
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .reassert import (
    CONTENDED,
    CREDENTIALS,
    DEFAULT_MAX_BACKOFF,
    Blocked,
    Contended,
    Decision,
    DifferentWindow,
    Drift,
    DryRun,
    InSync,
    NotEnabled,
    Reasserter,
    Resumed,
    SetWindow,
    Verified,
    VerifyFailed,
    reported_window,
)

log = logging.getLogger("exporter.reassert")


class DcpRest(Protocol):
    """What the enforcer needs of :class:`exporter.bybit.rest.RestClient`."""

    async def set_dcp(self, product: str, window: int) -> None: ...

    async def query_dcp_info(self) -> dict[str, DcpSetting]: ...


def _window_text(window: int | None) -> str:
    return "none" if window is None else str(window)


class Enforcer:
    """Drift gauges, drift logs, dry-run descriptions and, in enforce mode, the sets themselves."""

    def __init__(
        self,
        account: str,
        desired: Mapping[str, int],
        policy: str,
        rest: DcpRest,
        metrics: Metrics,
        *,
        settle_seconds: float = MIN_SETTLE_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
    ) -> None:
        self.account = account
        self.core = Reasserter(desired, policy, settle_seconds, max_backoff=max(max_backoff, settle_seconds))
        self._rest = rest
        self._metrics = metrics
        self._clock = clock
        self._tasks: dict[str, asyncio.Task] = {}
        self._logged: dict[str, Drift] = {}
        self._block_announced = False
        self._in_flight: dict[str, dict[str, object]] = {}  # product -> the audit of a set sent and not answered
        self._first_observation = True

    @property
    def blocked(self) -> bool:
        return self.core.blocked

    def contended(self, product: str) -> bool:
        """True while ``product`` stands down because another writer undoes its sets."""
        return self.core.contended(product)

    @property
    def busy(self) -> bool:
        """True while a set or its verification is running (tests poll this)."""
        return any(not t.done() for t in self._tasks.values())

    # -- inputs -------------------------------------------------------------------

    def take_poll(self, reported: Mapping[str, DcpSetting]) -> None:
        """After every successful poll: update drift, log changes, start sets (enforce)."""
        decision = self.core.decide(reported, self._clock.time())
        if self._first_observation:
            self._first_observation = False
            self._log_at_start(decision)
        self._apply(decision)

    def _log_at_start(self, decision: Decision) -> None:
        """The first poll of a start says what it found for each desired window, in sync or not: after a
        shutdown with a set in flight, this is where its outcome shows (drift is logged as ever, below)."""
        for product, drift in sorted(decision.drift.items()):
            if isinstance(drift, InSync):
                log.info(
                    "DCP window in sync at start",
                    extra={"account": self.account, "product": product, "window": drift.window},
                )

    def block(self, code: str | int = "10003") -> None:
        """The key itself was refused (e.g. on the poll): stop re-asserting for this account."""
        self.core.block(code)
        self._announce_block(self.core.blocked_code or str(code))

    async def aclose(self) -> None:
        """Stop every set and verification; a set sent and never answered is logged as of unknown outcome."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_unknown_outcomes()

    def _log_unknown_outcomes(self) -> None:
        """Bybit may or may not have applied a set whose answer never came: say so, for the audit trail."""
        for _product, audit in sorted(self._in_flight.items()):
            log.warning(
                "DCP window set (audit): in flight at shutdown, outcome unknown; the first poll after the next "
                "start shows whether it landed",
                extra=audit | {"result": "unknown"},
            )
        self._in_flight.clear()

    # -- decisions -> effects --------------------------------------------------------

    def _apply(self, decision: Decision) -> None:
        for product, drift in decision.drift.items():
            self._metrics.drift.labels(self.account, product).set(1 if drift.drifting else 0)
            if product in decision.changed:
                self._log_drift(product, drift)
        for event in decision.events:
            if isinstance(event, Verified):
                self._metrics.reassert_last_success.labels(self.account, event.product).set(self._clock.time())
                log.info(
                    "DCP window re-assertion verified",
                    extra={
                        "account": self.account,
                        "product": event.product,
                        "window": event.window,
                        "result": "verified",
                    },
                )
            elif isinstance(event, Contended):
                self._metrics.reassert_blocked.labels(self.account, event.product, CONTENDED).set(1)
                log.error(
                    "re-assertion stopped for this product: another writer changes the DCP window back "
                    "(sets Bybit accepted were undone %d times in %d minutes); find the other writer "
                    "(another exporter or replica with another desired window, a bot, the web UI), keep one; "
                    "sets resume after the window has stayed unchanged for %d minutes, or at restart",
                    event.strikes,
                    round(self.core.contention_period / 60),
                    round(self.core.contention_quiet / 60),
                    extra={
                        "account": self.account,
                        "product": event.product,
                        "reason": CONTENDED,
                        "reported": _window_text(reported_window(event.drift)),
                        "desired": self.core.desired[event.product],
                    },
                )
            elif isinstance(event, Resumed):
                self._metrics.reassert_blocked.labels(self.account, event.product, CONTENDED).set(0)
                log.warning(
                    "re-assertion resumed for this product: the DCP window stayed unchanged",
                    extra={
                        "account": self.account,
                        "product": event.product,
                        "quiet_seconds": round(event.quiet_seconds),
                    },
                )
            elif isinstance(event, VerifyFailed):
                self._metrics.reassert_failures.labels(self.account, event.product).inc()
                log.warning(
                    "DCP window re-assertion not effective after the settle time; backing off",
                    extra={
                        "account": self.account,
                        "product": event.product,
                        "drift": event.drift.kind,
                        "reported": _window_text(reported_window(event.drift)),
                        "failures": event.failures,
                        "retry_in_seconds": round(event.retry_at - self._clock.time(), 1),
                        "result": "verify_failed",
                    },
                )
            self._cancel_stale(event.product)
        for action in decision.actions:
            if isinstance(action, SetWindow):
                self._start(action)
            elif isinstance(action, DryRun):
                method, path, body = action.request()
                log.info(
                    "re-assert dry-run: would send",
                    extra={
                        "account": self.account,
                        "product": action.product,
                        "old": _window_text(action.old),
                        "new": action.new,
                        "method": method,
                        "path": path,
                        "body": body,
                    },
                )
            elif isinstance(action, Blocked):
                log.debug(
                    "re-assertion blocked",
                    extra={
                        "account": self.account,
                        "product": action.product,
                        "code": action.code,
                        "reason": action.reason,
                    },
                )

    def _log_drift(self, product: str, drift: Drift) -> None:
        previous = self._logged.get(product)
        self._logged[product] = drift
        fields = {"account": self.account, "product": product, "drift": drift.kind, "policy": self.core.policy}
        if isinstance(drift, DifferentWindow):
            log.warning(
                "DCP window drift: Bybit reports a different window",
                extra=fields | {"reported": drift.reported, "desired": drift.desired},
            )
        elif isinstance(drift, NotEnabled):
            listed = "not listed" if drift.status is None else f"listed {drift.status}"
            log.warning(
                "DCP window drift: product not enabled", extra=fields | {"reported": listed, "desired": drift.desired}
            )
        elif previous is not None and previous.drifting:
            log.info("DCP window in sync again", extra=fields | {"window": drift.window})

    def _cancel_stale(self, product: str) -> None:
        """A poll verified the set first: the task's own verification is no longer needed."""
        task = self._tasks.get(product)
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._tasks.pop(product, None)
            task.cancel()

    def _start(self, action: SetWindow) -> None:
        self._cancel_stale(action.product)
        task = asyncio.get_running_loop().create_task(
            self._enforce(action), name=f"reassert-{self.account}-{action.product}"
        )
        self._tasks[action.product] = task
        task.add_done_callback(functools.partial(self._done, action.product))

    def _done(self, product: str, task: asyncio.Task) -> None:
        if self._tasks.get(product) is task:
            del self._tasks[product]
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "re-assert task failed",
                exc_info=task.exception(),
                extra={"account": self.account, "product": product},
            )

    async def _enforce(self, action: SetWindow) -> None:
        """Set, record the answer, wait the settle time, verify by querying."""
        product = action.product
        method, path, body = set_dcp_request(product, action.window)
        audit = {
            "account": self.account,
            "product": product,
            "old": _window_text(action.old),
            "new": action.window,
            "method": method,
            "path": path,
            "body": body,
        }
        self._metrics.reassert_attempts.labels(self.account, product).inc()
        code: str | None = None
        message = ""
        self._in_flight[product] = audit
        try:
            await self._rest.set_dcp(product, action.window)
        except BybitError as exc:
            code, message = exc.code, exc.message
        except Exception as exc:
            code, message = "error", type(exc).__name__
        # A cancellation (shutdown) leaves the set in _in_flight: its outcome is unknown.
        self._in_flight.pop(product, None)
        failed = self.core.record_result(product, self._clock.time(), code)
        if code is None:
            log.info("DCP window set (audit)", extra=audit | {"result": "ok"})
        else:
            self._metrics.reassert_failures.labels(self.account, product).inc()
            extra = audit | {"result": "error", "code": code, "error": message}
            if failed is not None:
                extra["failures"] = failed.failures
                extra["retry_in_seconds"] = round(failed.retry_at - self._clock.time(), 1)
            log.warning("DCP window set (audit)", extra=extra)
            if self.core.blocked:
                self._announce_block(self.core.blocked_code or code)
            return

        await self._clock.sleep(self.core.settle)
        try:
            reported = await self._rest.query_dcp_info()
        except BybitError as exc:
            log.warning(
                "verification query failed; the next poll verifies",
                extra={"account": self.account, "product": product, "code": exc.code},
            )
            return
        if self._tasks.get(product) is asyncio.current_task():
            del self._tasks[product]  # done but for the bookkeeping below
        self.take_poll(reported)

    def _announce_block(self, code: str) -> None:
        if self._block_announced:
            return
        self._block_announced = True
        for product in self.core.desired:
            self._metrics.reassert_blocked.labels(self.account, product, CREDENTIALS).set(1)
        log.error(
            "re-assertion stopped for this account: Bybit refused the key (invalid key, signature, "
            "missing permission or IP not whitelisted); fix the API key, its permissions or its IP "
            "whitelist, then restart the exporter",
            extra={"account": self.account, "code": code},
        )
