"""One supervisor per account: the parts of one account, wired together and kept running.

An :class:`AccountSupervisor` wires the parts of one account together:

- the DCP-config poller (first poll at start, then every ``poll_interval``) ->
  ``bybit_dcp_up``, ``_enabled``, ``_window_seconds``, last-success time, and each good
  poll handed to the re-assert :class:`Enforcer` when desired windows are configured;
- the private stream (``order`` only in observer mode; plus ``dcp.*`` for the guarded
  products in guardian mode), whose order pushes feed the :class:`TriggerTracker`;
- after every reconnect, an order-history backfill of the time the stream was down,
  fed to the same tracker, which counts each order once.

Each part is restarted with backoff if it fails; nothing an account does can stop
another account's supervisor. The supervisor records what the pure pieces decide (trigger
observations) in metrics and logs; time comes from the clock the fleet hands down.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from ..bybit.errors import AUTH_CODES, BybitError, code_label, hint, hint_for
from ..bybit.models import DcpSetting
from ..bybit.pacing import RESTART_BACKOFF_MAX, Pacing, next_slot, restart_delay, stable_phase
from ..bybit.rest import RestClient
from ..bybit.stream import PrivateStream, StreamConfig
from ..clock import SYSTEM_CLOCK, Clock
from ..config import AccountConfig
from ..dcp import CATEGORIES, NOT_AVAILABLE, ORDER_TOPIC, PRODUCT_TOPIC, PRODUCTS
from ..drill.run import LINEAR_SETTLE_COINS
from ..metrics import Metrics
from .drills import ScheduledDrill
from .enforcer import Enforcer
from .guardian import Guardian
from .triggers import Observation, TriggerEvent, TriggerTracker

log = logging.getLogger(__name__)

TRIGGERS_LISTED = 10  # bybit_dcp_trigger_info keeps each product's latest triggers, no more
BACKFILL_MARGIN_SECONDS = 10.0  # read history from a little before the stream went down
BACKFILL_MAX_PAGES = 20  # per category and backfill: 20 x 50 orders
HISTORY_KEPT_MS = 24 * 3600 * 1000
RECENT_CLOSED_PAGES = 10  # Bybit lists the latest 500 closed orders: 10 pages of 50


def stream_topics(account: AccountConfig) -> tuple[str, ...]:
    """``order`` always; ``dcp.*`` only for the products a guardian account protects, and never
    when the guardian holds them for a bot's liveness (on a connection of its own: see guardian.py)."""
    if account.mode != "guardian" or account.guardian_liveness is not None:
        return (ORDER_TOPIC,)
    return (ORDER_TOPIC, *(PRODUCT_TOPIC[p] for p in account.guardian_products))


def record_triggers(metrics: Metrics, account: str, observation: Observation) -> None:
    """Put one :class:`Observation` of the trigger tracker into the account's metrics."""
    for category, count in observation.cancelled.items():
        metrics.cancelled_orders.labels(account, category).inc(count)
    for event in observation.events:
        if event.new:
            metrics.triggers.labels(account, event.product).inc()
            list_trigger(metrics, account, event.product, str(int(event.started_at * 1000)))
    for product, at in observation.last_trigger.items():
        metrics.last_trigger.labels(account, product).set(at)
    if observation.ignored:
        metrics.ignored_cancels.labels(account).inc(observation.ignored)
    if observation.undated:
        metrics.invalid_values.labels(account, "updatedTime").inc(observation.undated)


def list_trigger(metrics: Metrics, account: str, product: str, trigger: str) -> None:
    """Add a trigger to ``bybit_dcp_trigger_info``, dropping the product's oldest beyond
    :data:`TRIGGERS_LISTED`. The id is Bybit's time, so a restarted exporter, or a second
    replica, names the same trigger the same way and Alertmanager sees one alert."""
    metrics.trigger_info.labels(account, product, trigger).set(1)
    listed = sorted(
        (int(trigger_id), trigger_id)
        for (a, p, trigger_id), _ in metrics.trigger_info.rows()
        if a == account and p == product
    )
    for _, old in listed[:-TRIGGERS_LISTED]:
        metrics.trigger_info.remove(account, product, old)


def apply_dcp_info(metrics: Metrics, account: str, reported: Mapping[str, DcpSetting]) -> None:
    """Set the DCP-config gauges from one successful poll. Bybit lists only enabled products:
    a product it does not list is not enabled."""
    for product in PRODUCTS:
        setting = reported.get(product)
        on = setting is not None and setting.on
        metrics.enabled.labels(account, product).set(1 if on else 0)
        if setting is not None and on:
            metrics.window.labels(account, product).set(setting.window)
        else:
            metrics.window.remove(account, product)


def forget_dcp_info(metrics: Metrics, account: str) -> None:
    """The DCP state is unknown (no good poll yet, or the last one failed): export no
    ``enabled`` or ``window`` at all rather than a 0 that would say "not enabled"."""
    for product in PRODUCTS:
        metrics.enabled.remove(account, product)
        metrics.window.remove(account, product)


def set_poll_error(metrics: Metrics, account: str, code: str | None, advice: str | None = None) -> None:
    """``bybit_dcp_last_poll_error_info``: the failing poll's code and hint (``advice``, else the
    code's own), or none after a good poll."""
    advice = None if code is None else advice or hint(code)
    code = None if code is None else code_label(code)
    for (a, listed_code, listed_hint), _ in metrics.last_poll_error.rows():
        if a == account and (listed_code, listed_hint) != (code, advice):
            metrics.last_poll_error.remove(account, listed_code, listed_hint)
    if code is not None and advice is not None:
        metrics.last_poll_error.labels(account, code, advice).set(1)


class AccountSupervisor:
    def __init__(
        self,
        config: AccountConfig,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = SYSTEM_CLOCK,
        pacing: Pacing | None = None,
        rng: random.Random | None = None,
        backfill_margin: float = BACKFILL_MARGIN_SECONDS,
        backfill_max_pages: int = BACKFILL_MAX_PAGES,
    ) -> None:
        pacing = pacing if pacing is not None else Pacing()
        self.config = config
        self.name = config.name
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.backfill_margin = backfill_margin
        self.backfill_max_pages = backfill_max_pages
        self.rest = RestClient(
            session,
            account=config.name,
            environment=config.environment,
            base_url=config.rest_url,
            api_key=config.api_key,
            api_secret=config.api_secret,
            metrics=metrics,
            clock=clock,
            host_bans=pacing.host_bans,
        )
        self.tracker = TriggerTracker()
        self.enforcer: Enforcer | None = None
        if config.desired_windows:
            self.enforcer = Enforcer(
                config.name,
                dict(config.desired_windows),
                config.reassert,
                self.rest,
                metrics,
                settle_seconds=config.settle_seconds,
                clock=clock,
            )
        self.stream = PrivateStream(
            config.name,
            StreamConfig(
                url=config.stream_url,
                api_key=config.api_key,
                api_secret=config.api_secret,
                topics=stream_topics(config),
                ping_interval=config.ping_interval,
                pong_timeout=config.pong_timeout,
                ping_phase=stable_phase(config.name, "ping", config.ping_interval),
            ),
            metrics,
            on_orders=self._on_orders,
            on_reconnected=self.backfill,  # the stream runs it in a task of its own
            clock=clock,
            rng=self.rng,
            budget=pacing.budget,
        )
        self.guardian: Guardian | None = None
        if config.guardian_liveness is not None:
            self.guardian = Guardian(config, metrics, session, clock=clock, rng=self.rng, budget=pacing.budget)
        self.drill: ScheduledDrill | None = None
        if config.drill is not None:
            self.drill = ScheduledDrill(config, self.rest, metrics, clock=clock)
        self.first_poll_attempted = asyncio.Event()
        self.last_reported: dict[str, DcpSetting] | None = None
        self.last_poll_error: str | None = None
        self.backfills = 0
        self._backfilling = False
        self._pending_gap: tuple[float, float] | None = None  # a gap reported while a backfill ran

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
        tasks = [
            asyncio.create_task(self.keep_running("poller", self._poll_loop), name=f"{self.name}:poller"),
            asyncio.create_task(self.keep_running("stream", self.stream.run), name=f"{self.name}:stream"),
        ]
        for part, runner in (("guardian", self.guardian), ("drill", self.drill)):
            if runner is not None:
                tasks.append(asyncio.create_task(self.keep_running(part, runner.run), name=f"{self.name}:{part}"))
        try:
            await asyncio.gather(*tasks)
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
            delay = restart_delay(failures, self.rng)
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
            await self.poll_once()
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
            self.metrics.up.labels(self.name).set(0)
            forget_dcp_info(self.metrics, self.name)
            raise
        finally:
            self.first_poll_attempted.set()
        self.metrics.up.labels(self.name).set(1)
        self.metrics.last_poll_success.labels(self.name).set(self.clock.time())
        apply_dcp_info(self.metrics, self.name, reported)
        set_poll_error(self.metrics, self.name, None)
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
                self.enforcer.observe(reported)
            except Exception:  # re-assertion trouble must not stop polling
                log.exception("re-assert enforcer failed on a poll", extra={"account": self.name})
        return True

    def _poll_failed(self, exc: BybitError) -> None:
        self.metrics.up.labels(self.name).set(0)
        forget_dcp_info(self.metrics, self.name)
        set_poll_error(self.metrics, self.name, exc.code, hint_for(exc))
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
            self.enforcer.observe_auth_failure(exc.code)

    # ------------------------------------------------------------------ orders and backfill

    def _on_orders(self, orders: list[dict]) -> None:
        self._observe(orders, source="stream")

    def _observe(self, orders: list[dict], *, source: str) -> None:
        """Feed orders to the tracker; record and log what it saw."""
        observation = self.tracker.observe(orders, self.clock.time())
        record_triggers(self.metrics, self.name, observation)
        for event in observation.events:
            self._log_trigger(event, source=source)

    def _log_trigger(self, event: TriggerEvent, *, source: str) -> None:
        log.warning(
            "DCP trigger: orders cancelled by Disconnection Protect" if event.new else "more orders of a DCP trigger",
            extra={
                "account": self.name,
                "product": event.product,
                "orders": len(event.order_ids),
                "categories": ",".join(event.categories),
                "trigger_time": event.started_at,
                "source": source,
            },
        )

    async def backfill(self, down_since: float, up_at: float) -> int:
        """Read order history for the time the stream was down; return the orders fed to the tracker.

        At most one backfill runs per account. A gap reported meanwhile (the stream flapping
        while history is slow) is merged into one pending gap, which the running backfill reads
        next; the call that reported it returns 0 at once, so nothing queues.
        """
        if self._backfilling:
            pending = self._pending_gap
            self._pending_gap = (
                (down_since, up_at) if pending is None else (min(pending[0], down_since), max(pending[1], up_at))
            )
            return 0
        self._backfilling = True
        fed = 0
        gap: tuple[float, float] | None = (down_since, up_at)
        try:
            while gap is not None:
                fed += await self._backfill_gap(*gap)
                gap, self._pending_gap = self._pending_gap, None
        finally:
            self._backfilling = False
            self._pending_gap = None
        return fed

    async def _backfill_gap(self, down_since: float, up_at: float) -> int:
        """Two sources, because Bybit does not say whether order history's time range bounds
        ``createdTime`` or ``updatedTime``. Read by update time, history holds every order DCP
        cancelled in the gap; read by creation time, it misses an order that rested for days
        before DCP cancelled it. The latest closed orders (``/v5/order/realtime?openOnly=1``,
        up to 500 per category, not delayed like history) hold that one under either reading.
        The tracker counts each order once, whichever source brings it first."""
        end_ms = int((max(up_at, self.clock.time()) + 1.0) * 1000)
        # Bybit keeps cancelled orders in history for 24 h (and refuses ranges over 7 days).
        start_ms = max(int((down_since - self.backfill_margin) * 1000), end_ms - HISTORY_KEPT_MS)
        fed = 0
        for category in CATEGORIES:
            fed += await self._backfill_category(category, start_ms, end_ms)
            fed += await self._backfill_recent_closed(category, start_ms)
        self.backfills += 1
        log.info(
            "backfilled order history for the stream's downtime",
            extra={"account": self.name, "down_seconds": round(up_at - down_since, 1), "orders": fed},
        )
        return fed

    async def _backfill_category(self, category: str, start_ms: int, end_ms: int) -> int:
        """One category's history pages; whatever goes wrong is counted and stops this category only."""
        fed = 0
        cursor: str | None = None
        for _page in range(self.backfill_max_pages):
            try:
                orders, cursor = await self.rest.order_history(category, start_ms, end_ms, cursor=cursor)
                self._observe(orders, source="history")
            except Exception as exc:
                self._backfill_failed(category, "order history", exc)
                return fed
            fed += len(orders)
            if not cursor:
                return fed
        log.warning(
            "order-history backfill stopped at the page limit",
            extra={"account": self.name, "category": category, "pages": self.backfill_max_pages},
        )
        return fed

    async def _backfill_recent_closed(self, category: str, start_ms: int) -> int:
        """The category's latest closed orders (newest updated first) changed since ``start_ms``;
        older ones were settled before the gap and are not fed (they are no trigger of it)."""
        fed = 0
        for coin in LINEAR_SETTLE_COINS if category == "linear" else (None,):
            cursor: str | None = None
            for _page in range(RECENT_CLOSED_PAGES):
                try:
                    page, cursor = await self.rest.open_orders(category, cursor, settle_coin=coin, closed=True)
                    orders = [{**o, "category": category} for o in page if _updated_ms(o) >= start_ms]
                    self._observe(orders, source="recent closed orders")
                except Exception as exc:
                    self._backfill_failed(category, "recent closed orders", exc)
                    return fed
                fed += len(orders)
                if not cursor or len(orders) < len(page):  # the rest is older than the gap
                    break
        return fed

    def _backfill_failed(self, category: str, source: str, exc: Exception) -> None:
        """Counted; a Bybit error is a warning, anything else a crash with its traceback."""
        self.metrics.backfill_failures.labels(self.name, category).inc()
        fields = {"account": self.name, "category": category, "source": source}
        if isinstance(exc, BybitError):
            log.warning(
                "order-history backfill failed; cancels during the gap may be missed",
                extra=fields | {"code": exc.code, "error": exc.message},
            )
        else:
            log.error(
                "order-history backfill crashed; cancels during the gap may be missed", extra=fields, exc_info=exc
            )


def _updated_ms(order: dict) -> float:
    """An order's ``updatedTime`` in ms; one that is not a number counts as new (the tracker checks it)."""
    try:
        return float(str(order.get("updatedTime")))
    except (TypeError, ValueError):
        return float("inf")
