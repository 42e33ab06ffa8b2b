"""Guardian liveness: hold DCP off for a REST-only bot exactly as long as the bot shows signs of life.

The guarded ``dcp.*`` subscription lives on a connection of its own, never on the observer
connection: letting go closes only it, so the exporter keeps seeing orders and DCP's cancels
while DCP does its job. The decisions are :class:`~.liveness.Switch`'s; this shell gathers
the signs (an authenticated HTTP call, a file's modification time, or a non-empty Prometheus
query), opens the guarded connection on ``armed``, closes it on ``released`` and records both.
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

from ..bybit.pacing import ConnectionBudget
from ..bybit.stream import PrivateStream, StreamConfig
from ..config import AccountConfig, GuardianLiveness
from ..dcp import PRODUCT_TOPIC
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .liveness import TRANSITIONS, Switch
from .stream_metrics import StreamLog

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds: the armed gauge follows the guarded connection at least this often
FILE_POLLS_PER_TIMEOUT = 4
PROMETHEUS_POLL_MAX = 5.0
PROMETHEUS_TIMEOUT = 5.0


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
        self.switch.sign_of_life(self.clock.time() if at is None else at)
        self._wake.set()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Decide at every sign and at every deadline; the guarded connection never outlives this."""
        self.metrics.guardian_liveness_age.set_source(self.name, lambda: self.switch.last_sign)
        poller = self._poller()
        watch = asyncio.create_task(poller(), name=f"{self.name}:liveness") if poller else None
        try:
            while True:
                self._wake.clear()
                now = self.clock.time()
                transition = self.switch.decide(now)
                if transition == "armed":
                    self._arm()
                elif transition == "released":
                    await self._let_go()
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
        )
        self._held = asyncio.create_task(self.stream.run(), name=f"{self.name}:guarded")

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

    async def _watch_file(self) -> None:
        """The file's modification time is the sign: a bot that stops touching it stops counting."""
        path = str(self.liveness.path)
        every = self.liveness.timeout / FILE_POLLS_PER_TIMEOUT
        while True:
            try:
                self.sign_of_life(os.stat(path).st_mtime)
            except OSError:
                pass  # no file yet, or gone: no sign
            await self.clock.sleep(every)

    async def _watch_prometheus(self) -> None:
        """A non-empty answer to the query is a sign at the time of asking; errors are no sign."""
        every = min(PROMETHEUS_POLL_MAX, self.liveness.timeout / 3)
        url = f"{self.liveness.url}/api/v1/query"
        failing: str | None = None
        while True:
            problem = None
            try:
                async with self._session.get(
                    url,
                    params={"query": str(self.liveness.query)},
                    timeout=aiohttp.ClientTimeout(total=PROMETHEUS_TIMEOUT),
                ) as resp:
                    body = await resp.json(content_type=None)
                if isinstance(body, dict) and body.get("status") == "success":
                    if (body.get("data") or {}).get("result"):
                        self.sign_of_life()
                else:
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = type(exc).__name__
            if problem != failing:
                log.log(
                    logging.WARNING if problem else logging.INFO,
                    "liveness query failing; no sign of life while it fails" if problem else "liveness query answers",
                    extra={"account": self.name, **({"error": problem} if problem else {})},
                )
                failing = problem
            await self.clock.sleep(every)
