"""One supervisor per account: its parts kept running, and its DCP configuration polled.

The parts of an account come from :func:`~exporter.monitor.parts.build_parts`: the REST
client, the private stream (``order`` only in observer mode; plus ``dcp.*`` for the guarded
products in guardian mode) whose order pushes feed the trigger path, the backfill the
stream runs after every reconnect (:mod:`exporter.monitor.backfill`), and the optional
re-assert enforcer, guardian and drill. The supervisor keeps two things of its own:

- the restart loop (:meth:`AccountSupervisor.keep_running`): each part is restarted with
  backoff if it fails; nothing an account does can stop another account's supervisor;
- the DCP-config poller (first poll at start, then every ``poll_interval``) ->
  ``bybit_dcp_up``, ``_enabled``, ``_window_seconds``, last-success time
  (:mod:`exporter.monitor.projections`), and each good poll handed to the re-assert
  :class:`Enforcer` when desired windows are configured; after it, every few minutes, the
  account mode (:class:`~exporter.monitor.account_mode.AccountMode`).

Time comes from the clock the fleet hands down.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiohttp

from ..bybit.errors import AUTH_CODES, BybitError, hint_for
from ..bybit.models import DcpSetting
from ..bybit.pacing import (
    EQUAL_JITTER,
    RESTART_BACKOFF_MAX,
    RESTART_BACKOFF_MIN,
    Pacing,
    backoff_delay,
    next_slot,
    stable_phase,
)
from ..config import AccountConfig
from ..dcp import NOT_AVAILABLE
from ..http.pool import Transport
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .backfill import BACKFILL_MARGIN_SECONDS, BACKFILL_MAX_PAGES
from .parts import build_parts, stream_topics
from .projections import PollProjection

log = logging.getLogger(__name__)


class AccountSupervisor:
    def __init__(
        self,
        config: AccountConfig,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        transport: Transport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pacing: Pacing | None = None,
        rng: random.Random | None = None,
        backfill_margin: float = BACKFILL_MARGIN_SECONDS,
        backfill_max_pages: int = BACKFILL_MAX_PAGES,
    ) -> None:
        self.config = config
        self.name = config.name
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.parts = build_parts(
            config,
            metrics,
            session,
            transport=transport,
            clock=clock,
            pacing=pacing,
            rng=self.rng,
            backfill_margin=backfill_margin,
            backfill_max_pages=backfill_max_pages,
        )
        self.rest = self.parts.rest
        self.stream = self.parts.stream
        self.backfill = self.parts.backfill
        self.enforcer = self.parts.enforcer
        self.guardian = self.parts.guardian
        self.drill = self.parts.drill
        self.account_mode = self.parts.account_mode
        # A flag, not an asyncio.Event: nothing waits for it (readiness reads it), and an
        # Event's deque of waiters is 0.8 KB.
        self.first_poll_attempted = False
        self.last_reported: dict[str, DcpSetting] | None = None
        self.last_poll_error: str | None = None
        self._projection = PollProjection(metrics, self.name)  # up, enabled, window... of each poll

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run the poller and the stream until cancelled; restart either if it fails."""
        log.info(
            "watching account",
            extra={
                "account": self.name,
                "environment": self.config.environment,
                "mode": self.config.mode,
                "topics": ",".join(stream_topics(self.config)),
                "reassert": self.config.reassert,
            },
        )
        # The poller runs in this task, the other parts in tasks of their own: one task and one
        # gather fewer per account (about 1 KB). Neither kind ever returns or raises but when
        # cancelled (keep_running restarts a part instead), so this ends only when cancelled.
        tasks = [asyncio.create_task(self.keep_running("stream", self.stream.run), name=f"{self.name}:stream")]
        for part, runner in (("guardian", self.guardian), ("drill", self.drill)):
            if runner is not None:
                tasks.append(asyncio.create_task(self.keep_running(part, runner.run), name=f"{self.name}:{part}"))
        try:
            await self.keep_running("poller", self._poll_loop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.enforcer is not None:
                try:
                    await self.enforcer.aclose()
                except Exception:
                    log.exception("closing the re-assert enforcer failed", extra={"account": self.name})

    async def keep_running(self, part: str, factory: Callable[[], Awaitable[object]]) -> None:
        """Run ``factory()`` forever: a crash or an unexpected return restarts it after backoff."""
        failures = 0
        while True:
            started = self.clock.monotonic()
            crash: Exception | None = None
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a part must never take the supervisor down
                crash = exc
            if self.clock.monotonic() - started > RESTART_BACKOFF_MAX:
                failures = 0  # it ran well for a while: start the backoff afresh
            failures += 1
            delay = backoff_delay(failures - 1, RESTART_BACKOFF_MIN, RESTART_BACKOFF_MAX, self.rng, floor=EQUAL_JITTER)
            log.error(
                f"{part} {'failed' if crash else 'stopped unexpectedly'}; restarting",
                extra={"account": self.name, "part": part, "restart_in_seconds": round(delay, 2)},
                exc_info=crash,  # the traceback of the crash, logged outside its except block
            )
            await self.clock.sleep(delay)

    # ------------------------------------------------------------------ DCP config poller

    async def _poll_loop(self) -> None:
        """The first poll at once (readiness waits for it), then on the account's own grid, so a
        fleet's polls are spread evenly over the interval instead of sent together."""
        interval = self.config.poll_interval
        phase = stable_phase(self.name, "poll", interval)
        while True:
            polled = await self.poll_once()
            try:  # the account mode, every few minutes (see account_mode.py); never stops polling
                await self.account_mode.after_poll(self.last_reported if polled else None)
            except Exception:
                log.exception("account mode read failed unexpectedly", extra={"account": self.name})
            now = self.clock.monotonic()
            await self.clock.sleep(next_slot(now, interval, phase) - now)

    async def poll_once(self) -> bool:
        """One DCP-config poll; True on success. Never raises for Bybit or network trouble."""
        try:
            reported = await self.rest.query_dcp_info()
        except BybitError as exc:
            self._poll_failed(exc)
            return False
        except Exception:
            self._projection.unknown()
            raise
        finally:
            self.first_poll_attempted = True
        self._projection.succeeded(reported, self.clock.time())
        if not reported:
            if self.last_reported != reported:  # once, not on every poll or recovery
                log.warning(NOT_AVAILABLE, extra={"account": self.name})
        elif self.last_poll_error is not None or self.last_reported != reported:
            log.info(
                "DCP configuration",
                extra={
                    "account": self.name,
                    **{p.lower(): (f"{s.status} {s.window}s") for p, s in sorted(reported.items())},
                },
            )
        self.last_poll_error = None
        self.last_reported = reported
        if self.enforcer is not None:
            try:
                self.enforcer.take_poll(reported)
            except Exception:  # re-assertion trouble must not stop polling
                log.exception("re-assert enforcer failed on a poll", extra={"account": self.name})
        return True

    def _poll_failed(self, exc: BybitError) -> None:
        self._projection.failed(exc.code, hint_for(exc))
        # Log a failure when it starts or changes; repeats of the same failure at debug.
        level = logging.WARNING if self.last_poll_error != exc.code else logging.DEBUG
        log.log(
            level,
            "DCP config poll failed",
            extra={"account": self.name, "code": exc.code, "error": exc.message, "hint": hint_for(exc)},
        )
        self.last_poll_error = exc.code
        # The key, its signature, its permission or its IP was refused: a set would be too.
        # Stop re-asserting until the configuration (and so the process) changes; the same
        # codes stop it when a set itself is refused.
        if self.enforcer is not None and exc.code in AUTH_CODES:
            self.enforcer.block(exc.code)
