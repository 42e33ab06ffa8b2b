"""The drill's I/O: an armed connection cut on purpose, an observer, a canary order, and its cleanup.

Both connections are the exporter's own private-stream client (:class:`~exporter.bybit.stream.PrivateStream`)
with an observer of the drill's (:class:`.observers.DrillStream`), and the calls go through the
account's :class:`~exporter.bybit.rest.RestClient`: the drill holds no websocket of its own.

The order of things, each step refusing or reporting before anything irreversible:
refuse mainnet unless allowed; read the product's window; open the observer (``order``) and
the armed (``dcp.*``) connections; place the post-only canary far from the market; refuse if
the product has other active orders; cut the armed connection (no close frame, or silence);
wait for the canary's ``CancelByDCP`` on the observer, then in order history; and, whatever
happened (Ctrl-C, an error, a timeout), cancel the canary if it still rests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..bybit.errors import ORDER_NOT_FOUND, BybitError
from ..bybit.rest import RestClient
from ..bybit.stream import PrivateStream, StreamConfig
from ..config import AccountConfig, DrillSettings
from ..dcp import (
    FINAL_STATUSES,
    ORDER_TOPIC,
    PRODUCT_CATEGORIES,
    PRODUCT_CATEGORY,
    PRODUCT_TOPIC,
    is_dcp_cancel,
    settle_coins,
)
from ..runtime.clock import Clock
from .observers import DrillStream
from .verdict import (
    ERROR,
    INTERRUPTED,
    REFUSED,
    SILENCE_IDLE_CUTOFF,
    DrillReport,
    canary_order,
    canary_price,
    judge,
    mainnet_refusal,
    others_refusal,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
HANDSHAKE_TIMEOUT = 10.0
PING_INTERVAL = 5.0  # the default of run_drill's ping_interval
CANARY_CONFIRM_TIMEOUT = 5.0  # for the canary's first push; then the open-order list decides
OTHERS_SETTLE = 1.0  # after the canary's cancel, for other cancels of the same trigger to arrive
CLEANUP_TIMEOUT = 15.0


class Held:
    """One of the drill's connections: the shared private-stream client, run in a task of its own."""

    def __init__(self, stream: PrivateStream, observer: DrillStream) -> None:
        self.stream = stream
        self.observer = observer
        self.task = asyncio.create_task(stream.run(), name=f"drill:{','.join(stream.config.topics)}")

    def cut(self, how: str) -> None:
        """``abort``: drop the TCP connection without a close frame; ``silence``: stop pinging (and
        reading), leaving the socket open until Bybit's idle cut-off closes it. Neither reconnects."""
        if how == "silence":
            self.stream.go_silent()
        else:
            self.stream.abort()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def open_connection(
    account: AccountConfig,
    url: str,
    topics: tuple[str, ...],
    clock: Clock,
    ping_interval: float,
    connections: list[Held],
    on_orders: Callable[[list[dict]], None] = lambda orders: None,
) -> Held:
    """Open a connection and wait until Bybit acknowledges its subscription; a refusal, an
    unreachable host or no acknowledgement in time is a :class:`DrillError`, not a retry."""
    config = StreamConfig(
        url,
        account.api_key,
        account.api_secret,
        topics,
        ping_interval=ping_interval,
        pong_timeout=max(ping_interval, HANDSHAKE_TIMEOUT),
        handshake_timeout=HANDSHAKE_TIMEOUT,
        close_timeout=1.0,
        auth_expiry=10.0,
    )
    observer = DrillStream(",".join(topics))
    held = Held(PrivateStream(f"drill:{account.name}", config, observer, on_orders=on_orders, clock=clock), observer)
    connections.append(held)
    try:
        async with clock.timeout(3 * HANDSHAKE_TIMEOUT):  # the opening, then each acknowledgement
            await observer.up
    except ConnectionError as exc:
        raise DrillError(str(exc)) from None
    return held


class DrillError(Exception):
    """A step of the drill failed; the message says which, and never carries a credential."""


class _Watch:
    """What the observer saw: the canary's latest state and every CancelByDCP of the product."""

    def __init__(self, categories: tuple[str, ...]) -> None:
        self.categories = categories
        self.canary_id: str | None = None
        self.canary: dict | None = None
        self.canary_changed = asyncio.Event()
        self.dcp_cancels: dict[str, float] = {}  # orderId -> when the cancel arrived

    def on_orders(self, orders: list[dict], now: float) -> None:
        for order in orders:
            order_id = order.get("orderId")
            if order.get("category") not in self.categories or not order_id:
                continue
            if is_dcp_cancel(order):
                self.dcp_cancels.setdefault(order_id, now)
            if order_id == self.canary_id:
                self.canary = order
                self.canary_changed.set()


async def run_drill(
    account: AccountConfig,
    settings: DrillSettings,
    rest: RestClient,
    clock: Clock,
    report: DrillReport,
    *,
    link_id: str,
    progress: Progress = lambda text: None,
    ping_interval: float = PING_INTERVAL,
) -> DrillReport:
    """Run one drill, filling ``report``; a cancellation (Ctrl-C) is reported, cleaned up, then re-raised.

    ``ping_interval``: how often the drill's two connections ping until the cut."""
    refusal = mainnet_refusal(account.environment, settings.mainnet)
    if refusal:
        report.outcome, report.message = REFUSED, refusal
        return report
    watch = _Watch(PRODUCT_CATEGORIES[settings.product])
    connections: list[Held] = []
    report.started_at = clock.time()
    try:
        await _drill(account, settings, rest, clock, report, watch, connections, link_id, progress, ping_interval)
    except asyncio.CancelledError:
        report.outcome, report.message = INTERRUPTED, "interrupted before DCP fired"
        raise
    except (BybitError, DrillError, OSError, TimeoutError) as exc:
        report.outcome, report.message = ERROR, _describe(exc)
    finally:
        for connection in connections:
            await connection.close()
        await _clean_up(rest, report, watch, clock, progress)
    return report


async def _drill(
    account: AccountConfig,
    settings: DrillSettings,
    rest: RestClient,
    clock: Clock,
    report: DrillReport,
    watch: _Watch,
    connections: list[Held],
    link_id: str,
    progress: Progress,
    ping_interval: float,
) -> None:
    product, category = settings.product, PRODUCT_CATEGORY[settings.product]
    dcp = (await rest.query_dcp_info()).get(product)
    if dcp is None or not dcp.on:
        report.outcome = REFUSED
        report.message = f"DCP is not enabled for {product} on this account (institutional accounts; ask Bybit)"
        return
    report.window_seconds = dcp.window
    progress(f"DCP window for {product}: {dcp.window} s")

    await open_connection(
        account,
        account.ws_url,
        (ORDER_TOPIC,),
        clock,
        ping_interval,
        connections,
        on_orders=lambda orders: watch.on_orders(orders, clock.time()),
    )
    armed_url = account.ws_url
    if settings.cut == "silence":  # silence only kills a connection after Bybit's idle cut-off
        armed_url += ("&" if "?" in armed_url else "?") + f"max_active_time={SILENCE_IDLE_CUTOFF}s"
    armed = await open_connection(account, armed_url, (PRODUCT_TOPIC[product],), clock, ping_interval, connections)
    progress(f"armed connection up (subscribed {PRODUCT_TOPIC[product]}); observer up (order)")

    report.canary_price = canary_price(
        await rest.last_price(category, settings.symbol), settings.side, settings.price_offset
    )
    try:
        watch.canary_id = report.canary_order_id = await rest.create_order(
            canary_order(settings, report.canary_price, link_id)
        )
    except BybitError as exc:
        report.canary_final_status = "Rejected"
        judge(report)
        report.message += f" ({_describe(exc)})"
        return
    report.canary_cleanup = "still resting"
    progress(
        f"canary {report.canary_order_id}: {settings.side} {settings.qty} {settings.symbol} @ {report.canary_price}"
    )
    if not await _canary_rests(rest, category, watch, clock):
        report.canary_final_status = (watch.canary or {}).get("orderStatus", "Rejected")
        judge(report)
        return

    others = [o for o in await _active_orders(rest, watch.categories) if o.get("orderId") != watch.canary_id]
    refusal = others_refusal(product, others, settings.allow_other_orders)
    if refusal:
        report.outcome, report.message = REFUSED, refusal
        return

    idle = SILENCE_IDLE_CUTOFF if settings.cut == "silence" else 0
    armed.cut(settings.cut)
    report.cut_at = clock.time()
    give_up = dcp.window + idle + settings.tolerance
    progress(f"armed connection cut ({settings.cut}); waiting up to {give_up:g} s for DCP")
    while not _final(watch.canary):
        waited = clock.time() - report.cut_at
        if waited >= give_up:
            break
        progress(f"  {waited:5.1f} s since the cut (window {dcp.window} s)")
        watch.canary_changed.clear()
        with contextlib.suppress(TimeoutError):
            async with clock.timeout(min(1.0, give_up - waited)):
                await watch.canary_changed.wait()
    if watch.canary_id in watch.dcp_cancels:
        await clock.sleep(OTHERS_SETTLE)
        report.cancelled_at, report.seen_on = watch.dcp_cancels[watch.canary_id], "stream"
    elif not _final(watch.canary):
        await _from_history(rest, category, watch, report)
    canary = watch.canary or {}
    report.canary_final_status = canary.get("orderStatus")
    report.cancel_type = canary.get("cancelType")
    report.other_orders_cancelled = sorted(i for i in watch.dcp_cancels if i != watch.canary_id)
    judge(report)


async def _canary_rests(rest: RestClient, category: str, watch: _Watch, clock: Clock) -> bool:
    """True once the canary is seen resting: on the observer stream, else in the open-order list."""
    with contextlib.suppress(TimeoutError):
        async with clock.timeout(CANARY_CONFIRM_TIMEOUT):
            await watch.canary_changed.wait()
    if watch.canary is None:
        for order in await _active_orders(rest, (category,)):
            if order.get("orderId") == watch.canary_id:
                watch.canary = {**order, "category": category}
    return watch.canary is not None and not _final(watch.canary)


async def _active_orders(rest: RestClient, categories: tuple[str, ...]) -> list[dict]:
    orders: list[dict] = []
    for category in categories:
        for coin in settle_coins(category):
            cursor: str | None = None
            while True:
                page, cursor = await rest.open_orders(category, cursor, settle_coin=coin)
                orders += page
                if not cursor:
                    break
    return orders


async def _from_history(rest: RestClient, category: str, watch: _Watch, report: DrillReport) -> None:
    """The observer may have missed the push: order history keeps the canary's fate (and the others')."""
    assert report.cut_at is not None and report.started_at is not None
    start_ms, end_ms = int((report.started_at - 5) * 1000), int((report.cut_at + 3600) * 1000)
    for cat in watch.categories:
        orders, _ = await rest.order_history(cat, start_ms, end_ms)
        for order in orders:
            if order.get("orderId") == watch.canary_id:
                watch.canary = order
                if is_dcp_cancel(order):
                    report.cancelled_at, report.seen_on = int(order["updatedTime"]) / 1000, "history"
            dcp_cancel = is_dcp_cancel(order)
            if dcp_cancel and int(order.get("updatedTime", 0)) >= report.cut_at * 1000:
                watch.dcp_cancels.setdefault(order["orderId"], int(order["updatedTime"]) / 1000)


async def _clean_up(rest: RestClient, report: DrillReport, watch: _Watch, clock: Clock, progress: Progress) -> None:
    """Cancel the canary unless it is gone already; say so when that fails, with what to do."""
    if watch.canary_id is None:
        return
    if _final(watch.canary):
        report.canary_cleanup = f"gone ({(watch.canary or {}).get('orderStatus')}); nothing to cancel"
        return
    try:
        async with clock.timeout(CLEANUP_TIMEOUT):
            await rest.cancel_order(PRODUCT_CATEGORY[report.product], watch.canary_id)
        report.canary_cleanup = "cancelled by the drill"
    except BybitError as exc:
        if exc.code == ORDER_NOT_FOUND:
            report.canary_cleanup = "already gone when the drill cancelled it"
        else:
            report.canary_cleanup = f"COULD NOT CANCEL ({_describe(exc)}): cancel order {watch.canary_id} by hand"
    except (TimeoutError, OSError) as exc:
        report.canary_cleanup = f"COULD NOT CANCEL ({type(exc).__name__}): cancel order {watch.canary_id} by hand"
    progress(f"canary {watch.canary_id}: {report.canary_cleanup}")


def _final(order: dict | None) -> bool:
    return order is not None and order.get("orderStatus") in FINAL_STATUSES


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BybitError):
        return f"{exc.endpoint}: {exc.code} {exc.message}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]
