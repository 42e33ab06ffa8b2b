"""What the REST routes, the websocket sessions and the :class:`~.server.Simulator` façade
share: the accounts, the live sessions, the DCP engine, rate limits, faults, the clock, and
the background tasks they start.

It also drives the DCP engine: a ticker wakes at the next deadline, closes connections that
went silent, cancels the orders of products whose timer ran out and pushes the cancels.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from . import frames
from .accounts import SimAccount
from .clock import Clock, wait_event
from .engine import PRODUCT_CATEGORIES, DcpEngine, Trigger
from .faults import Faults
from .ratelimit import RateLimiter

if TYPE_CHECKING:  # session.py imports this module; the type is only needed for annotations
    from .session import Session

log = logging.getLogger("exporter.simulator")

MAX_TICK_WAIT = 1.0  # seconds: the ticker also looks at pending windows at least this often


class SimCore:
    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random,
        limiter: RateLimiter,
        time_scale: float,
        settle_delay: float,
        idle_cutoff: float | None,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.limiter = limiter
        self.time_scale = time_scale
        self.settle_delay = settle_delay
        self.idle_cutoff = idle_cutoff
        self.history_filter = "updatedTime"  # which time order history's startTime/endTime bound
        self.history_delay = 0.0  # seconds before an order's change shows in order history
        self.accounts: dict[str, SimAccount] = {}
        self.sessions: dict[str, Session] = {}
        self.engine = DcpEngine(self.window_of)
        self.faults = Faults()
        self.tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()

    def sessions_of(self, api_key: str | None) -> list[Session]:
        """The live sessions authenticated with ``api_key`` (None: not yet authenticated)."""
        return [s for s in self.sessions.values() if s.api_key == api_key]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background; stop() cancels whatever is still running."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def poke(self) -> None:
        """A deadline may have moved earlier: let the ticker look again now."""
        self._wake.set()

    def push_orders(self, api_key: str, orders: list[dict]) -> None:
        """Push ``orders`` to the account's sessions subscribed to their topics (not to stalled ones)."""
        now = self.clock.time()
        for session in self.sessions_of(api_key):
            if session.stalled:
                continue
            for topic in session.topics:
                if topic not in frames.ORDER_TOPICS:
                    continue
                wanted = [o for o in orders if frames.topic_wants(topic, o["category"])]
                if wanted:
                    push = frames.order_push(topic, wanted, now=now, push_id=frames.new_push_id(self.rng))
                    self.spawn(session.send(push))

    # --- the DCP engine, driven by time ------------------------------------------------------
    def window_of(self, api_key: str, product: str, now: float) -> float | None:
        """The product's window in wall seconds (times ``time_scale``), None when DCP is off."""
        acct = self.accounts.get(api_key)
        if acct is None:
            return None
        acct.apply_due_settings(now)
        window = acct.dcp.get(product)
        return None if window is None else window * self.time_scale

    async def run_ticker(self) -> None:
        """Tick at every deadline of the engine and of pending windows, and whenever poked."""
        self._wake = asyncio.Event()
        while True:
            try:
                self.tick()
            except Exception:  # a bug here must not stop DCP for every account
                log.exception("simulator: DCP tick failed")
            deadlines = [d for d in [self.engine.next_deadline()] if d is not None]
            deadlines += [p[0] for a in self.accounts.values() for p in a.pending_dcp]
            now = self.clock.time()
            wait = min([d - now for d in deadlines] + [MAX_TICK_WAIT])
            self._wake.clear()
            await wait_event(self.clock, self._wake, max(wait, 0.001))

    def tick(self) -> None:
        """Expire idle connections, fire due DCP timers, apply settled windows."""
        now = self.clock.time()
        dead, fired = self.engine.tick(now)
        for conn_id in dead:
            session = self.sessions.get(conn_id)
            if session is not None:
                self.spawn(session.close(1000, "max_active_time exceeded"))
        for trigger in fired:
            self._fire(trigger, now)
        for acct in self.accounts.values():
            acct.apply_due_settings(now)

    def _fire(self, trigger: Trigger, now: float) -> None:
        acct = self.accounts.get(trigger.account)
        if acct is None:
            return
        cancelled = acct.cancel_by_dcp(PRODUCT_CATEGORIES[trigger.product], now)
        acct.triggers.append({"product": trigger.product, "time": now, "order_ids": [o["orderId"] for o in cancelled]})
        log.info("DCP triggered: account=%s product=%s cancelled=%d", acct.name, trigger.product, len(cancelled))
        if cancelled:
            self.push_orders(trigger.account, cancelled)

    async def cancel_tasks(self) -> None:
        """Cancel the background tasks, including any they start while being cancelled."""
        while self.tasks:
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.tasks.difference_update(tasks)
