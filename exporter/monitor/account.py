"""One supervisor per account, and the :class:`Exporter` that runs them all in one loop.

An :class:`AccountSupervisor` wires the parts of one account together:

- the DCP-config poller (first poll at start, then every ``poll_interval``) ->
  ``bybit_dcp_up``, ``_enabled``, ``_window_seconds``, last-success time, and each good
  poll handed to the re-assert :class:`Enforcer` when desired windows are configured;
- the private stream (``order`` only in observer mode; plus ``dcp.*`` for the guarded
  products in guardian mode), whose order pushes feed the :class:`TriggerTracker`;
- after every reconnect, an order-history backfill of the time the stream was down,
  fed to the same tracker, which counts each order once.

Each part is restarted with backoff if it fails; nothing an account does can stop
another account's supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import aiohttp

from ..bybit.errors import AUTH_CODES, AuthError, BybitError, RateLimited
from ..bybit.models import PRODUCTS, DcpSetting
from ..bybit.rest import RestClient
from ..bybit.stream import equal_jitter_delay
from ..config import AccountConfig, Config
from ..metrics import CATEGORIES, PRODUCT_TOPIC, Metrics

log = logging.getLogger(__name__)

BACKFILL_MARGIN_SECONDS = 10.0  # read history from a little before the stream went down
BACKFILL_MAX_PAGES = 20  # per category and backfill: 20 x 50 orders
HISTORY_KEPT_MS = 24 * 3600 * 1000
RESTART_BACKOFF_MIN = 1.0
RESTART_BACKOFF_MAX = 60.0


def restart_delay(failures: int, rng: random.Random) -> float:
    """Wait before restarting a failed part: equal jitter, doubling from 1 s up to 60 s."""
    return equal_jitter_delay(failures - 1, RESTART_BACKOFF_MIN, RESTART_BACKOFF_MAX, rng)


def stream_topics(account: AccountConfig) -> tuple[str, ...]:
    """``order`` always; ``dcp.*`` only for the products a guardian account protects."""
    if account.mode != "guardian":
        return ("order",)
    return ("order",) + tuple(PRODUCT_TOPIC[p] for p in account.guardian_products)


def apply_dcp_info(metrics: Metrics, account: str, reported: dict[str, DcpSetting]) -> None:
    """Set the DCP-config gauges from one successful poll (pure apart from the metrics)."""
    for product in PRODUCTS:
        setting = reported.get(product)
        on = setting is not None and setting.on
        metrics.enabled.labels(account, product).set(1 if on else 0)
        if on:
            metrics.window.labels(account, product).set(setting.window)  # type: ignore[union-attr]
        else:
            try:
                metrics.window.remove(account, product)
            except KeyError:
                pass


class AccountSupervisor:
    def __init__(
        self,
        config: AccountConfig,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backfill_margin: float = BACKFILL_MARGIN_SECONDS,
        backfill_max_pages: int = BACKFILL_MAX_PAGES,
    ) -> None:
        from ..bybit.stream import PrivateStream, StreamConfig
        from .triggers import TriggerTracker

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
            base_url=config.rest_url,
            api_key=config.api_key,
            api_secret=config.api_secret,
            metrics=metrics,
            clock=clock,
        )
        self.tracker = TriggerTracker(config.name, metrics, clock=clock)
        self.enforcer = None
        if config.desired_windows:
            from .enforcer import Enforcer

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
            ),
            metrics,
            on_orders=self._on_orders,
            on_reconnected=self.backfill,  # the stream runs it in a task of its own
            clock=clock,
            rng=self.rng,
        )
        self.first_poll_attempted = asyncio.Event()
        self.last_reported: dict[str, DcpSetting] | None = None
        self.last_poll_error: str | None = None
        self.backfills = 0
        self._backfill_lock = asyncio.Lock()

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
            asyncio.create_task(self._keep_running("poller", self._poll_loop), name=f"{self.name}:poller"),
            asyncio.create_task(self._keep_running("stream", self.stream.run), name=f"{self.name}:stream"),
        ]
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

    async def _keep_running(self, part: str, factory: Callable[[], object]) -> None:
        """Run ``factory()`` forever: a crash or an unexpected return restarts it after backoff."""
        failures = 0
        while True:
            started = time.monotonic()
            crashed = False
            try:
                await factory()  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a part must never take the supervisor down
                crashed = True
            if time.monotonic() - started > RESTART_BACKOFF_MAX:
                failures = 0  # it ran well for a while: start the backoff afresh
            failures += 1
            delay = restart_delay(failures, self.rng)
            log.error(
                f"{part} {'failed' if crashed else 'stopped unexpectedly'}; restarting",
                extra={"account": self.name, "part": part, "restart_in_seconds": round(delay, 2)},
                exc_info=crashed,
            )
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ DCP config poller

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.config.poll_interval)

    async def poll_once(self) -> bool:
        """One DCP-config poll; True on success. Never raises for Bybit or network trouble."""
        try:
            reported = await self.rest.query_dcp_info()
        except BybitError as exc:
            self._poll_failed(exc)
            return False
        except Exception:
            self.metrics.up.labels(self.name).set(0)
            raise
        finally:
            self.first_poll_attempted.set()
        self.metrics.up.labels(self.name).set(1)
        self.metrics.last_poll_success.labels(self.name).set(self.clock())
        apply_dcp_info(self.metrics, self.name, reported)
        if self.last_poll_error is not None or self.last_reported != reported:
            log.info(
                "DCP configuration",
                extra={
                    "account": self.name,
                    **{p.lower(): (f"{s.status} {s.window}s") for p, s in sorted(reported.items())},
                    **({"dcp": "none listed"} if not reported else {}),
                },
            )
        self.last_poll_error = None
        self.last_reported = reported
        if self.enforcer is not None:
            try:
                self.enforcer.observe(reported)
            except Exception:  # noqa: BLE001 - re-assertion trouble must not stop polling
                log.exception("re-assert enforcer failed on a poll", extra={"account": self.name})
        return True

    def _poll_failed(self, exc: BybitError) -> None:
        self.metrics.up.labels(self.name).set(0)
        # Log a failure when it starts or changes; repeats of the same failure at debug.
        level = logging.WARNING if self.last_poll_error != exc.code else logging.DEBUG
        hint = ""
        if isinstance(exc, AuthError):
            hint = "check the API key, secret, environment and IP whitelist"
        elif isinstance(exc, RateLimited):
            hint = "rate limited; waiting for Bybit's reset time"
        log.log(
            level,
            "DCP config poll failed",
            extra={"account": self.name, "code": exc.code, "error": exc.message, **({"hint": hint} if hint else {})},
        )
        self.last_poll_error = exc.code
        # The key, its signature, its permission or its IP was refused: a set would be too.
        # Stop re-asserting until the configuration (and so the process) changes; the same
        # codes stop it when a set itself is refused.
        if self.enforcer is not None and exc.code in AUTH_CODES:
            self.enforcer.observe_auth_failure(exc.code)

    # ------------------------------------------------------------------ orders and backfill

    def _on_orders(self, orders: list[dict]) -> None:
        for event in self.tracker.observe(orders):
            self._log_trigger(event, source="stream")

    def _log_trigger(self, event, *, source: str) -> None:
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
        """Read order history for the time the stream was down; return the orders fed to the tracker."""
        async with self._backfill_lock:
            end_ms = int((max(up_at, self.clock()) + 1.0) * 1000)
            # Bybit keeps cancelled orders in history for 24 h (and refuses ranges over 7 days).
            start_ms = max(int((down_since - self.backfill_margin) * 1000), end_ms - HISTORY_KEPT_MS)
            fed = 0
            for category in CATEGORIES:
                cursor: str | None = None
                for _page in range(self.backfill_max_pages):
                    try:
                        orders, cursor = await self.rest.order_history(category, start_ms, end_ms, cursor=cursor)
                    except BybitError as exc:
                        log.warning(
                            "order-history backfill failed; cancels during the gap may be missed",
                            extra={"account": self.name, "category": category, "code": exc.code, "error": exc.message},
                        )
                        break
                    fed += len(orders)
                    for event in self.tracker.observe(orders):
                        self._log_trigger(event, source="history")
                    if not cursor:
                        break
                else:
                    log.warning(
                        "order-history backfill stopped at the page limit",
                        extra={"account": self.name, "category": category, "pages": self.backfill_max_pages},
                    )
            self.backfills += 1
            log.info(
                "backfilled order history for the stream's downtime",
                extra={"account": self.name, "down_seconds": round(up_at - down_since, 1), "orders": fed},
            )
            return fed


class Exporter:
    """All accounts in one asyncio loop; ready once every account had its first poll attempt."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._session = session
        self._own_session = session is None
        self.supervisors: dict[str, AccountSupervisor] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    @property
    def ready(self) -> bool:
        return bool(self.supervisors) and all(s.first_poll_attempted.is_set() for s in self.supervisors.values())

    def account_names(self) -> list[str]:
        return [a.name for a in self.config.accounts]

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100), headers={"User-Agent": "bybit-dcp-exporter"}
            )
        for account in self.config.accounts:
            self.metrics.add_account(
                account.name,
                environment=account.environment,
                mode=account.mode,
                desired_windows=account.desired_windows,
                ping_interval=account.ping_interval,
                pong_timeout=account.pong_timeout,
                poll_interval=account.poll_interval,
            )
            supervisor = AccountSupervisor(account, self.metrics, self._session, clock=self.clock)
            self.supervisors[account.name] = supervisor
            self._tasks[account.name] = asyncio.create_task(self._run(supervisor), name=f"account:{account.name}")

    async def _run(self, supervisor: AccountSupervisor) -> None:
        try:
            await supervisor.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one account never stops another
            log.exception("account supervisor stopped", extra={"account": supervisor.name})

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Exporter":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
