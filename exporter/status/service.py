"""The status board's thin shell: samples the metrics on the injected clock, builds pages on request.

Samples and pages are both made in worker threads (the sampler's lock keeps them apart), so
the event loop keeps its timing; a page is a fresh read of the metrics plus the sampler's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from . import api, model, render
from .sampler import Sampler
from .snapshot import SAMPLED_SOURCES, collect, read

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 5.0
# A sample costs about 25 µs of CPU per account (reading its sampled series, comparing them with
# the last sample); at most this many accounts a second keeps the board under 0.2 % of a core.
SAMPLED_ACCOUNTS_PER_SECOND = 60.0


def sample_interval(accounts: int) -> float:
    """Every 5 s, or less often with more than 300 accounts (1,000: every 17 s)."""
    return max(SAMPLE_INTERVAL, accounts / SAMPLED_ACCOUNTS_PER_SECOND)


class StatusService:
    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Clock = SYSTEM_CLOCK,
        interval: float = SAMPLE_INTERVAL,
        links: model.Links | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.sampler = Sampler(interval)
        self.links = links if links is not None else model.Links()

    def sample(self) -> None:
        self.sampler.record(read(collect(self.metrics, SAMPLED_SOURCES)), self.clock.time())

    async def run(self) -> None:
        """Sample every interval until cancelled; a failed sample is logged and the next one tried.

        In a worker thread: a sample of 1,000 accounts takes about 25 ms of CPU, and the
        interpreter hands the event loop a turn within half a millisecond
        (``pauses.prefer_the_loop``), so pings keep their timing."""
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except Exception:  # the board must never take the exporter down
                log.exception("status sample failed")
            await self.clock.sleep(self.sampler.interval)

    async def running(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: sampling lives as long as the web app."""
        task = asyncio.create_task(self.run(), name="status-sampler")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def board(self, names: Sequence[str], *, now: float, ready: bool, account: str | None = None) -> model.Board:
        snapshots = read(collect(self.metrics))
        shown = [n for n in names if account is None or n == account]
        rows = [model.account_status(n, snapshots.get(n), self.sampler.view(n, now), now, self.links) for n in shown]
        events = self.sampler.events(account) if account is None or account in names else []
        return model.board(rows, events, list(names), now=now, ready=ready, selected=account)

    def html(self, names: Sequence[str], *, now: float, ready: bool, account: str | None, telemetry_path: str) -> str:
        return render.page(self.board(names, now=now, ready=ready, account=account), telemetry_path)

    def json(self, names: Sequence[str], *, now: float, ready: bool, account: str | None) -> dict[str, Any]:
        return api.status(self.board(names, now=now, ready=ready, account=account))
