"""Guardian liveness: hold DCP off for a REST-only bot exactly as long as the bot shows signs of life.

The guarded ``dcp.*`` subscription lives on a connection of its own, never on the observer
connection: letting go closes only it, so the exporter keeps seeing orders and DCP's cancels
while DCP does its job. The decisions are :class:`~.liveness.Switch`'s; this shell gathers
the signs (an authenticated HTTP call, a file's modification time, or a Prometheus query with a
live value), has each answer judged by :mod:`.liveness`'s verdict functions, opens the guarded
connection on ``armed``, closes it on ``released`` and records both. The watchers run under
supervision: one that raises or ends is logged and started again, never left dead.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import random
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from ..bybit.observers import StreamLog
from ..bybit.pacing import ConnectionBudget
from ..bybit.stream import LearnTime, PrivateStream, StreamConfig
from ..bybit.timeframe import TimeFrame
from ..config import AccountConfig, GuardianLiveness
from ..dcp import PRODUCT_TOPIC
from ..metrics import Metrics
from ..runtime.bounded import ACCEPT_ENCODING, TooLarge, read_bounded
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .liveness import (
    LIVENESS_ERROR_REASONS,
    TRANSITIONS,
    Alive,
    Switch,
    Unknown,
    Verdict,
    bounded_by_now,
    file_verdict,
    prometheus_verdict,
)

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds: the armed gauge follows the guarded connection at least this often
FILE_POLLS_PER_TIMEOUT = 4
PROMETHEUS_POLL_MAX = 5.0
PROMETHEUS_TIMEOUT = 5.0
PROMETHEUS_MAX_BODY = 1 << 20  # a liveness answer is a few hundred bytes; a megabyte is something else
WATCHER_RESTART_DELAY = 1.0  # seconds before a watcher that ended is started again


class Guardian:
    def __init__(
        self,
        account: AccountConfig,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        budget: ConnectionBudget | None = None,
        timeframe: TimeFrame | None = None,
        learn_time: LearnTime | None = None,
    ) -> None:
        assert account.guardian_liveness is not None
        self.name = account.name
        self.liveness: GuardianLiveness = account.guardian_liveness
        self.products = account.guardian_products
        self.metrics = metrics
        self.clock = clock
        self.switch = Switch(self.liveness.timeout)
        self._session = session
        self._rng = rng or random.Random()
        self._budget = budget
        # The account's one offset to Bybit's clock: the guarded connection's auth is in Bybit's
        # time too (a host clock behind would otherwise have it refused while the bot lives).
        self._timeframe = timeframe
        self._learn_time = learn_time
        self._stream_config = StreamConfig(
            url=account.stream_url,
            api_key=account.api_key,
            api_secret=account.api_secret,
            topics=tuple(PRODUCT_TOPIC[p] for p in self.products),
            ping_interval=account.ping_interval,
            pong_timeout=account.pong_timeout,
        )
        self.stream: PrivateStream | None = None
        self._held: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        for to in TRANSITIONS:
            metrics.guardian_transitions.labels(self.name, to)
        metrics.guardian_liveness_rejected.labels(self.name)
        for reason in LIVENESS_ERROR_REASONS:
            metrics.guardian_liveness_errors.labels(self.name, reason)
        self._failing: str | None = None  # the reason the source last told nothing, None while it answers
        self._show()

    # ------------------------------------------------------------------ signs of life

    def accepts(self, token: str) -> bool:
        """The bot's bearer token, compared in constant time; a wrong one is counted and never arms."""
        expected = self.liveness.token
        if token and expected is not None and hmac.compare_digest(token.encode(), expected.reveal().encode()):
            return True
        self.metrics.guardian_liveness_rejected.labels(self.name).inc()
        return False

    def sign_of_life(self, at: float | None = None) -> None:
        """A sign at ``at`` (default now); never later than now, so no sign holds DCP off past its time."""
        now = self.clock.time()
        self.switch.sign_of_life(now if at is None else bounded_by_now(at, now).at)
        self._wake.set()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Decide at every sign and at every deadline; the guarded connection never outlives this."""
        self.metrics.guardian_liveness_age.set_source(self.name, lambda: self.switch.last_sign)
        poller = self._poller()
        watch = asyncio.create_task(self._supervised(poller), name=f"{self.name}:liveness") if poller else None
        try:
            while True:
                self._wake.clear()
                now = self.clock.time()
                transition = self.switch.decide(now)
                if transition == "armed":
                    self._arm()
                elif transition == "released":
                    await self._let_go()
                elif self.switch.armed and self._held is not None and self._held.done():
                    self._rearm()
                if transition is not None:
                    self.metrics.guardian_transitions.labels(self.name, transition).inc()
                    self._log(transition, now)
                self._show()
                deadline = self.switch.next_decision()
                wait = STATUS_EVERY if deadline is None else min(max(deadline - now, 0.0), STATUS_EVERY)
                try:
                    async with self.clock.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await self._let_go()
            self.switch.armed = False
            self._show()

    def _arm(self) -> None:
        self.stream = PrivateStream(
            self.name,
            self._stream_config,
            # The guarded connection's own heartbeat series would overwrite the observer's
            # (same account label): it writes the stream's log lines and no metric.
            StreamLog(self.name),
            on_orders=lambda orders: None,  # the observer connection sees every order
            clock=self.clock,
            rng=self._rng,
            budget=self._budget,
            timeframe=self._timeframe,
            learn_time=self._learn_time,
        )
        self._held = asyncio.create_task(self.stream.run(), name=f"{self.name}:guarded")

    def _rearm(self) -> None:
        """The guarded connection's task ended while the bot is alive: log why and open it again."""
        assert self._held is not None
        error = None if self._held.cancelled() else self._held.exception()
        log.error(
            "guarded connection ended while the bot is alive; opening it again",
            exc_info=error,
            extra={"account": self.name},
        )
        self._arm()

    async def _let_go(self) -> None:
        if self._held is not None:
            self._held.cancel()
            await asyncio.gather(self._held, return_exceptions=True)
        self._held = None
        self.stream = None

    def _show(self) -> None:
        held = 1 if self.switch.armed and self.stream is not None and self.stream.connected else 0
        for product in self.products:
            self.metrics.guardian_armed.labels(self.name, product).set(held)
            self.metrics.ws_dcp_subscribed.labels(self.name, product).set(held)

    def _log(self, transition: str, now: float) -> None:
        products = ",".join(self.products)
        if transition == "armed":
            log.info("guardian armed: the bot shows signs of life", extra={"account": self.name, "products": products})
            return
        last = self.switch.last_sign
        log.warning(
            "guardian let go: no sign of life from the bot; DCP cancels its orders after the window unless it returns",
            extra={
                "account": self.name,
                "products": products,
                "silent_seconds": None if last is None else round(now - last, 1),
                "timeout_seconds": self.liveness.timeout,
            },
        )

    # ------------------------------------------------------------------ polled sources

    def _poller(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        if self.liveness.source == "file":
            return self._watch_file
        if self.liveness.source == "prometheus":
            return self._watch_prometheus
        return None  # http: the bot calls us

    async def _supervised(self, watch: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a watcher for as long as the guardian runs: one that ends or raises is logged and restarted.

        The watchers catch what they expect themselves; this is for the rest. A watcher that
        died silently would leave the switch released for good while the bot is alive.
        """
        while True:
            try:
                await watch()
                log.error("liveness watcher ended unexpectedly; restarting it", extra={"account": self.name})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("liveness watcher failed; restarting it", extra={"account": self.name})
                self.metrics.guardian_liveness_errors.labels(self.name, "exception").inc()
            await self.clock.sleep(WATCHER_RESTART_DELAY)

    def judge(self, verdict: Verdict) -> None:
        """Act on one verdict: a sign for ``Alive``; a count of the reason for ``Unknown``; a log line on each change."""
        if isinstance(verdict, Alive):
            if verdict.suspect is not None:
                self.metrics.guardian_liveness_errors.labels(self.name, verdict.suspect).inc()
                log.warning(
                    "liveness sign dated in the future; counted as now",
                    extra={"account": self.name, "reason": verdict.suspect},
                )
            self.sign_of_life(verdict.at)
        elif isinstance(verdict, Unknown):
            self.metrics.guardian_liveness_errors.labels(self.name, verdict.reason).inc()
        state = verdict.reason if isinstance(verdict, Unknown) else None
        if state != self._failing:
            if state is None:
                log.info("liveness source answers", extra={"account": self.name, "source": self.liveness.source})
            else:
                extra = {"account": self.name, "source": self.liveness.source, "reason": state}
                if isinstance(verdict, Unknown) and verdict.detail:
                    extra["error"] = verdict.detail
                log.warning("liveness source tells nothing; no sign of life while it does", extra=extra)
            self._failing = state

    async def _watch_file(self) -> None:
        """The file's modification time is the sign: a bot that stops touching it stops counting."""
        path = str(self.liveness.path)
        every = self.liveness.timeout / FILE_POLLS_PER_TIMEOUT
        previous: int | None = None
        while True:
            now = self.clock.time()
            verdict: Verdict
            try:
                mtime_ns: int | None = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                mtime_ns = None  # no file yet, or gone: no sign
                verdict = file_verdict(None, previous, now)
            except (OSError, ValueError) as exc:  # ValueError: a path the OS cannot take
                mtime_ns = previous  # cannot look: nothing new
                verdict = Unknown("unreadable", getattr(exc, "strerror", None) or type(exc).__name__)
            else:
                verdict = file_verdict(mtime_ns, previous, now)
            previous = mtime_ns
            self._judge_safely(verdict)
            await self.clock.sleep(every)

    async def _watch_prometheus(self) -> None:
        """Each answer to the query is judged by :func:`~.liveness.prometheus_verdict`; only a live one is a sign."""
        every = min(PROMETHEUS_POLL_MAX, self.liveness.timeout / 3)
        while True:
            try:
                verdict = await self._ask_prometheus()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything unforeseen: logged, counted, and the watcher goes on
                log.exception("liveness query failed unexpectedly", extra={"account": self.name})
                verdict = Unknown("exception", type(exc).__name__)
            self._judge_safely(verdict)
            await self.clock.sleep(every)

    async def _ask_prometheus(self) -> Verdict:
        try:
            async with self._session.get(
                f"{self.liveness.url}/api/v1/query",
                params={"query": str(self.liveness.query)},
                timeout=aiohttp.ClientTimeout(total=PROMETHEUS_TIMEOUT),
                headers={"Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,  # inflated by read_bounded: a gzip bomb stops at the limit
            ) as resp:
                body = await read_bounded(resp, PROMETHEUS_MAX_BODY)
                status = resp.status
        except TooLarge:
            return Unknown("not_json", f"answer larger than {PROMETHEUS_MAX_BODY} bytes (received or inflated)")
        except aiohttp.ClientError as exc:
            return Unknown("network", type(exc).__name__)
        except TimeoutError:
            return Unknown("timeout")
        return prometheus_verdict(status, body, self.clock.time())

    def _judge_safely(self, verdict: Verdict) -> None:
        try:
            self.judge(verdict)
        except Exception:
            log.exception("liveness verdict could not be applied", extra={"account": self.name})
