"""The doctor's I/O: the read-only calls per account, handed to the pure checks.

For each account: ``GET /v5/market/time`` (unsigned, for the clock), then the signed reads
``GET /v5/user/query-api``, ``GET /v5/account/query-dcp-info`` and ``GET /v5/account/info``
through the exporter's own :class:`~exporter.bybit.rest.RestClient`, and one private-stream
connection through its own :class:`~exporter.bybit.stream.PrivateStream`, subscribed to
``order`` only: a ``dcp.*`` subscription would make the doctor a protected connection of the
account, the masking the exporter avoids. Nothing is ever written to Bybit.

The REST calls are heard by :class:`RestProbe` and the stream by :class:`StreamProbe`: the
clients' log lines (:mod:`exporter.bybit.observers`), nothing counted, and what the checks need:
the skew the answers' ``time`` showed, the first RTT, or why the connection ended. What the answers mean is decided in :mod:`.checks`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp

from ..bybit.clients import rest_client
from ..bybit.errors import BybitError
from ..bybit.heartbeat import PongResult
from ..bybit.observers import RestLog, StreamLog
from ..bybit.pacing import ConnectionBudget
from ..bybit.session import Event, Reconnect
from ..bybit.stream import PrivateStream, StreamConfig
from ..config import AccountConfig
from ..dcp import ORDER_TOPIC
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .checks import Answers, Failure, Line, StreamResult, account_lines, no_signed_answer

STREAM_TIMEOUT = 20.0  # seconds for the probe: open, auth, subscribe and the first pong
WATCH_STEP = 0.02  # how often the probe looks at the stream's state
AT_ONCE = 8  # accounts examined together
T = TypeVar("T")


async def examine(
    account: AccountConfig,
    session: aiohttp.ClientSession,
    *,
    clock: Clock = SYSTEM_CLOCK,
    budget: ConnectionBudget | None = None,
    stream_timeout: float = STREAM_TIMEOUT,
) -> tuple[Answers, float]:
    """Every answer of one account, and Bybit's time as the checks' "now" (the local time when unknown)."""
    heard = RestProbe(account.name)
    rest = rest_client(account, session, observer=heard, clock=clock)
    answers = Answers()
    t0 = clock.time()
    try:
        server = await rest.server_time()
        answers.skew = server - (t0 + clock.time()) / 2
    except BybitError as exc:
        answers.skew = Failure(exc.code, exc.message)
    answers.key = await _read(rest.api_key_info)
    if not no_signed_answer(answers):
        answers.dcp = await _read(rest.query_dcp_info)
        answers.account = await _read(rest.account_info)
        answers.stream = await probe_stream(account, clock=clock, budget=budget, timeout=stream_timeout)
    answers.resynced = rest.time_offset != 0.0
    answers.response_skew = heard.skew
    now = clock.time() + (answers.skew if isinstance(answers.skew, float) else 0.0)
    return answers, now


async def _read(call: Callable[[], Awaitable[T]]) -> T | Failure:
    try:
        return await call()
    except BybitError as exc:
        return Failure(exc.code, exc.message)


class RestProbe(RestLog):
    """The REST client's warnings, and the clock skew the answers' ``time`` showed last."""

    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.skew: float | None = None

    def clock_skew(self, seconds: float) -> None:
        self.skew = seconds


class StreamProbe(StreamLog):
    """The stream's log lines, and the first RTT or the first reason the connection ended."""

    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.rtt: float | None = None
        self.reason: str | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, PongResult) and event.rtt is not None and self.rtt is None:
            self.rtt = event.rtt
        elif isinstance(event, Reconnect) and self.reason is None:
            self.reason = event.reason
        super().on_event(event)


async def probe_stream(
    account: AccountConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    budget: ConnectionBudget | None = None,
    timeout: float = STREAM_TIMEOUT,
) -> StreamResult:
    """One private connection: auth, subscribe ``order`` (never ``dcp.*``), the first ping's pong."""
    probe = StreamProbe(account.name)
    stream = PrivateStream(
        account.name,
        StreamConfig(
            url=account.stream_url,
            api_key=account.api_key,
            api_secret=account.api_secret,
            topics=(ORDER_TOPIC,),
            ping_interval=account.ping_interval,
            pong_timeout=min(account.pong_timeout, timeout),
            handshake_timeout=min(10.0, timeout),
        ),
        probe,
        on_orders=lambda orders: None,
        clock=clock,
        budget=budget,
    )
    task = asyncio.create_task(stream.run(), name=f"{account.name}:doctor-stream")
    deadline = clock.monotonic() + timeout
    try:
        while clock.monotonic() < deadline and not task.done():
            if probe.reason is not None:
                return StreamResult(reason=probe.reason)
            if stream.connected and probe.rtt is not None:
                return StreamResult(rtt=probe.rtt)
            await clock.sleep(WATCH_STEP)
        return StreamResult(reason="timeout")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def diagnose(
    accounts: Sequence[AccountConfig],
    *,
    clock: Clock = SYSTEM_CLOCK,
    budget: ConnectionBudget | None = None,
    stream_timeout: float = STREAM_TIMEOUT,
    session: aiohttp.ClientSession | None = None,
) -> list[Line]:
    """Every account's lines, in the order given; a few accounts at a time, streams paced by ``budget``."""
    budget = budget if budget is not None else ConnectionBudget()
    gate = asyncio.Semaphore(AT_ONCE)
    own = session is None
    session = session if session is not None else aiohttp.ClientSession()

    async def one(account: AccountConfig) -> list[Line]:
        async with gate:
            answers, now = await examine(account, session, clock=clock, budget=budget, stream_timeout=stream_timeout)
            return account_lines(account, answers, now)

    try:
        results = await asyncio.gather(*(one(a) for a in accounts))
    finally:
        if own:
            await session.close()
    return [line for lines in results for line in lines]
