"""One account's configuration turned into its parts, in one function.

:func:`build_parts` is the whole wiring of an account: the REST client, the private stream
(its topics and heartbeat settings from the configuration), the trigger path both it and the
backfill feed, the backfill the stream runs after each reconnect, and the optional re-assert
enforcer, guardian liveness connection and scheduled drill, and the reader of the account
mode, all sharing one :class:`~exporter.bybit.timeframe.TimeFrame`. It starts nothing: the
:class:`~exporter.monitor.account.AccountSupervisor` runs the parts and restarts them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import aiohttp

from ..bybit.clients import rest_client
from ..bybit.pacing import Pacing, stable_phase
from ..bybit.rest import RestClient
from ..bybit.stream import PrivateStream, StreamConfig
from ..bybit.timeframe import TimeFrame
from ..config import AccountConfig
from ..dcp import ORDER_TOPIC, PRODUCT_TOPIC
from ..drill.schedule import ScheduledDrill
from ..http.pool import Transport
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .account_mode import AccountMode
from .backfill import BACKFILL_MARGIN_SECONDS, BACKFILL_MAX_PAGES, Backfill
from .enforcer import Enforcer
from .guardian import Guardian
from .rest_metrics import RestMetrics
from .stream_metrics import StreamMetrics
from .time_metrics import ClockSkewRefusals
from .trigger_path import TriggerPath


def stream_topics(account: AccountConfig) -> tuple[str, ...]:
    """``order`` always; ``dcp.*`` only for the products a guardian account protects, and never
    when the guardian holds them for a bot's liveness (on a connection of its own: see guardian.py)."""
    if account.mode != "guardian" or account.guardian_liveness is not None:
        return (ORDER_TOPIC,)
    return (ORDER_TOPIC, *(PRODUCT_TOPIC[p] for p in account.guardian_products))


def stream_config(account: AccountConfig) -> StreamConfig:
    """The private stream's settings: its URL, key, topics and heartbeat, pinging on the
    account's own phase so a fleet's pings are spread over the interval."""
    return StreamConfig(
        url=account.stream_url,
        api_key=account.api_key,
        api_secret=account.api_secret,
        topics=stream_topics(account),
        ping_interval=account.ping_interval,
        pong_timeout=account.pong_timeout,
        ping_phase=stable_phase(account.name, "ping", account.ping_interval),
    )


@dataclass(frozen=True, slots=True)
class AccountParts:
    timeframe: TimeFrame
    rest: RestClient
    triggers: TriggerPath
    backfill: Backfill
    stream: PrivateStream
    enforcer: Enforcer | None
    guardian: Guardian | None
    drill: ScheduledDrill | None
    account_mode: AccountMode


def build_parts(
    account: AccountConfig,
    metrics: Metrics,
    session: aiohttp.ClientSession,
    *,
    transport: Transport | None = None,
    clock: Clock = SYSTEM_CLOCK,
    pacing: Pacing | None = None,
    rng: random.Random | None = None,
    backfill_margin: float = BACKFILL_MARGIN_SECONDS,
    backfill_max_pages: int = BACKFILL_MAX_PAGES,
) -> AccountParts:
    """The parts of ``account``, wired to each other, to the fleet's ``pacing`` (the connection
    budget and the host bans every account shares) and to its ``clock``. REST calls go through
    ``transport`` (the fleet's pool) when given, else through ``session``, which also carries
    the liveness guardian's queries."""
    pacing = pacing if pacing is not None else Pacing()
    rng = rng or random.Random()
    # The account's one offset to Bybit's clock: its REST signing, its stream's auth expiry,
    # its trigger times and its backfill's window are all in Bybit's time.
    timeframe = TimeFrame(ClockSkewRefusals(metrics, account.name))
    rest = rest_client(
        account,
        transport if transport is not None else session,
        observer=RestMetrics(metrics, account.name, account.environment),
        clock=clock,
        host_bans=pacing.host_bans,
        timeframe=timeframe,
    )
    triggers = TriggerPath(account.name, metrics, clock=clock, timeframe=timeframe)
    backfill = Backfill(
        account.name,
        rest,
        triggers.take,
        metrics,
        clock=clock,
        margin=backfill_margin,
        max_pages=backfill_max_pages,
        timeframe=timeframe,
    )
    stream = PrivateStream(
        account.name,
        stream_config(account),
        StreamMetrics(metrics, account.name),
        on_orders=triggers.take_pushed,
        on_reconnected=backfill.run,  # the stream runs it in a task of its own
        clock=clock,
        rng=rng,
        budget=pacing.budget,
        timeframe=timeframe,
        learn_time=rest.learn_time,  # Bybit's server time before the first auth
    )
    enforcer = None
    if account.desired_windows:
        enforcer = Enforcer(
            account.name,
            dict(account.desired_windows),
            account.reassert,
            rest,
            metrics,
            settle_seconds=account.settle_seconds,
            clock=clock,
        )
    guardian = None
    if account.guardian_liveness is not None:
        guardian = Guardian(
            account,
            metrics,
            session,
            clock=clock,
            rng=rng,
            budget=pacing.budget,
            timeframe=timeframe,
            learn_time=rest.learn_time,
        )
    drill = ScheduledDrill(account, rest, metrics, clock=clock) if account.drill is not None else None
    account_mode = AccountMode(account.name, rest, metrics, clock)
    return AccountParts(timeframe, rest, triggers, backfill, stream, enforcer, guardian, drill, account_mode)
