"""All watched accounts in one asyncio loop: one supervisor each, one clock and one pacing for all.

The fleet owns what the accounts share: the REST pool (:class:`exporter.http.pool.Pool`, one
set of keep-alive connections; each request carries its account's own signed headers), the
aiohttp session beside it (the liveness guardian's Prometheus queries, and REST calls through
an HTTP(S) proxy, which the pool does not speak to),
the clock every part reads time from, the random generator behind every backoff's jitter,
and the :class:`~exporter.bybit.pacing.Pacing` limits (the per-host connection budget and
host bans). A crash in one account's supervisor is
logged and never stops another.

The pool is built to last: its connections are kept alive longer than the longest poll
interval, so a poll reuses the connection of an earlier one and steady state opens no new
TCP connections (``bybit_dcp_api_connections_opened_total``; the pool, and for proxied calls
the session's connector from :mod:`exporter.bybit.wire`, also time each call from its
connection and record the pool wait).
The fleet also watches its own event loop's lag, freezes its long-lived objects after
start-up, hands the heap's free pages back to the system once start-up is over and every
few minutes after, and lets the loop take the GIL back quickly from a scrape's rendering thread, so
neither a garbage collection nor a scrape stalls the pongs (see docs/measurement.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Sequence
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from ..bybit.pacing import Pacing
from ..bybit.tls import session_context
from ..bybit.transport import AiohttpTransport
from ..bybit.wire import TimedConnector
from ..config import Config
from ..http.pool import Pool
from ..metrics import Metrics
from ..runtime.allocator import give_back
from ..runtime.clock import SYSTEM_CLOCK, Clock
from ..runtime.loop_lag import watch_loop_lag
from ..runtime.pauses import freeze_survivors, prefer_the_loop
from .account import AccountSupervisor
from .guardian import Guardian
from .rest_metrics import PoolMetrics

log = logging.getLogger(__name__)

USER_AGENT = "bybit-dcp-exporter"
# Polls are spread over their interval (pacing.stable_phase), so a few connections carry them
# all; the slots beyond that absorb bursts (start-up, backfills after a mass reconnect).
CONNECTION_POOL_SIZE = 100
MIN_KEEPALIVE_SECONDS = 60.0


# When the heap's free pages go back to the system: a while after every account has polled
# once (or after the limit, if some never do), then every few minutes (reconnects, backfills).
SETTLE_SECONDS = 10.0
SETTLE_LIMIT_SECONDS = 120.0
GIVE_BACK_EVERY_SECONDS = 300.0


def keepalive_seconds(config: Config) -> float:
    """Twice the longest poll interval (at least a minute): an idle connection outlives the gap
    between two polls, so the next poll finds it open."""
    return max([MIN_KEEPALIVE_SECONDS, *(2 * a.poll_interval for a in config.accounts)])


def rest_pool(config: Config, metrics: Metrics, session: aiohttp.ClientSession, *, clock: Clock = SYSTEM_CLOCK) -> Pool:
    """The fleet's REST pool: keep-alive connections outliving the longest poll interval, timed
    into ``metrics``, and ``session`` for the calls that go through a proxy.

    Each REST host gets an equal share of the connections (all of them with one host, as with
    Bybit's own): in a start-up burst a host's calls then wait for its own connections instead of
    opening new ones while another host's sit idle (see :mod:`exporter.http.pool`)."""
    tls = session_context(a.rest_url for a in config.accounts)
    hosts = {urlsplit(a.rest_url)[:2] for a in config.accounts}
    return Pool(
        clock=clock,
        observer=PoolMetrics(metrics),
        limit=CONNECTION_POOL_SIZE,
        limit_per_host=max(1, CONNECTION_POOL_SIZE // max(1, len(hosts))),
        keepalive=keepalive_seconds(config),
        tls=tls if isinstance(tls, ssl.SSLContext) else None,
        headers={"User-Agent": USER_AGENT},
        through_proxy=AiohttpTransport(session),
    )


class Fleet:
    """Ready once every account had its first DCP-config poll attempt (at once for a shard with none)."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pacing: Pacing | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.pacing = pacing if pacing is not None else Pacing()
        # One generator for every account's jitter (restart backoff, reconnect backoff): a
        # Mersenne Twister's state is 2.5 KB, and no account needs a sequence of its own.
        self.rng = random.Random()
        self._session = session
        self._own_session = session is None
        self._pool: Pool | None = None
        self.supervisors: dict[str, AccountSupervisor] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop_lag: asyncio.Task[None] | None = None
        self._give_back: asyncio.Task[None] | None = None
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and all(s.first_poll_attempted for s in self.supervisors.values())

    def account_names(self) -> Sequence[str]:
        return [a.name for a in self.config.accounts]

    def guardian(self, account: str) -> Guardian | None:
        """The account's liveness guardian, for the liveness route; None when it has none."""
        supervisor = self.supervisors.get(account)
        return supervisor.guardian if supervisor is not None else None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=TimedConnector(  # the wire timing, without a TraceConfig's cost per request
                    self.clock,
                    PoolMetrics(self.metrics),
                    limit=CONNECTION_POOL_SIZE,
                    keepalive_timeout=keepalive_seconds(self.config),
                    ssl=session_context(a.rest_url for a in self.config.accounts),
                ),
                headers={"User-Agent": USER_AGENT},
            )
        if self._pool is None:
            self._pool = rest_pool(self.config, self.metrics, self._session, clock=self.clock)
        self._loop_lag = asyncio.create_task(
            watch_loop_lag(self.clock, self.metrics.event_loop_lag.observe), name="event-loop-lag"
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
            supervisor = AccountSupervisor(
                account,
                self.metrics,
                self._session,
                transport=self._pool,
                clock=self.clock,
                pacing=self.pacing,
                rng=self.rng,
            )
            self.supervisors[account.name] = supervisor
            self._tasks[account.name] = asyncio.create_task(self._run(supervisor), name=f"account:{account.name}")
        self._started = True
        prefer_the_loop()
        freeze_survivors()
        self._give_back = asyncio.create_task(self._give_memory_back(), name="give-memory-back")

    async def _give_memory_back(self) -> None:
        """Hand the heap's free pages back (:func:`~exporter.runtime.allocator.give_back`) once
        start-up is over (every account polled once, or ``SETTLE_LIMIT_SECONDS``), then every
        ``GIVE_BACK_EVERY_SECONDS``: what a thousand handshakes and first polls freed under
        live blocks would otherwise stay resident."""
        clock = self.clock
        waited = 0.0
        while not self.ready and waited < SETTLE_LIMIT_SECONDS:
            await clock.sleep(1.0)
            waited += 1.0
        while True:
            await clock.sleep(SETTLE_SECONDS)
            give_back()
            await clock.sleep(GIVE_BACK_EVERY_SECONDS - SETTLE_SECONDS)

    async def _run(self, supervisor: AccountSupervisor) -> None:
        try:
            await supervisor.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # one account never stops another
            log.exception("account supervisor stopped", extra={"account": supervisor.name})

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *(t for t in (self._loop_lag, self._give_back) if t is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._loop_lag = self._give_back = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
