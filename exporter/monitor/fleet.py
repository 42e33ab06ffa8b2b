"""All watched accounts in one asyncio loop: one supervisor each, one clock and one pacing for all.

The fleet owns what the accounts share: the aiohttp session (one connection pool), the
clock every part reads time from, and the :class:`~exporter.bybit.pacing.Pacing` limits
(the per-host connection budget and host bans). A crash in one account's supervisor is
logged and never stops another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType

import aiohttp

from ..bybit.pacing import Pacing
from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..metrics import Metrics
from .account import AccountSupervisor
from .guardian import Guardian

log = logging.getLogger(__name__)

USER_AGENT = "bybit-dcp-exporter"
CONNECTION_POOL_SIZE = 100


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
        self._session = session
        self._own_session = session is None
        self.supervisors: dict[str, AccountSupervisor] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and all(s.first_poll_attempted.is_set() for s in self.supervisors.values())

    def account_names(self) -> Sequence[str]:
        return [a.name for a in self.config.accounts]

    def guardian(self, account: str) -> Guardian | None:
        """The account's liveness guardian, for the liveness route; None when it has none."""
        supervisor = self.supervisors.get(account)
        return supervisor.guardian if supervisor is not None else None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTION_POOL_SIZE), headers={"User-Agent": USER_AGENT}
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
            supervisor = AccountSupervisor(account, self.metrics, self._session, clock=self.clock, pacing=self.pacing)
            self.supervisors[account.name] = supervisor
            self._tasks[account.name] = asyncio.create_task(self._run(supervisor), name=f"account:{account.name}")
        self._started = True

    async def _run(self, supervisor: AccountSupervisor) -> None:
        try:
            await supervisor.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # one account never stops another
            log.exception("account supervisor stopped", extra={"account": supervisor.name})

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
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
