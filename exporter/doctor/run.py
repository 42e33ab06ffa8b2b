"""The doctor's I/O: the read-only calls per account, handed to the pure checks.

For each account: ``GET /v5/market/time`` (unsigned, for the clock), then the signed reads
``GET /v5/user/query-api``, ``GET /v5/account/query-dcp-info`` and ``GET /v5/account/info``
through the exporter's own :class:`~exporter.bybit.rest.RestClient`, and one private-stream
connection through its own :class:`~exporter.bybit.stream.PrivateStream`, subscribed to
``order`` only: a ``dcp.*`` subscription would make the doctor a protected connection of the
account, the masking the exporter avoids. Nothing is ever written to Bybit.

The clients record into a :class:`~exporter.metrics.Metrics` of their own that nobody scrapes;
the runner reads back the few values it needs (the skew from the answers' ``time``, the
stream's reconnect reason and first RTT). What the answers mean is decided in :mod:`.checks`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp

from ..bybit.errors import BybitError
from ..bybit.pacing import ConnectionBudget
from ..bybit.rest import RestClient
from ..bybit.stream import PrivateStream, StreamConfig
from ..config import AccountConfig
from ..dcp import ORDER_TOPIC
from ..metrics import Metrics
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
    sink = Metrics()
    rest = RestClient(
        session,
        account=account.name,
        environment=account.environment,
        base_url=account.rest_url,
        api_key=account.api_key,
        api_secret=account.api_secret,
        metrics=sink,
        clock=clock,
    )
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
    skews = [value for key, value in sink.clock_skew.rows() if key == (account.name,)]
    answers.response_skew = float(skews[0]) if skews else None  # type: ignore[arg-type]
    now = clock.time() + (answers.skew if isinstance(answers.skew, float) else 0.0)
    return answers, now


async def _read(call: Callable[[], Awaitable[T]]) -> T | Failure:
    try:
        return await call()
    except BybitError as exc:
        return Failure(exc.code, exc.message)


async def probe_stream(
    account: AccountConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    budget: ConnectionBudget | None = None,
    timeout: float = STREAM_TIMEOUT,
) -> StreamResult:
    """One private connection: auth, subscribe ``order`` (never ``dcp.*``), the first ping's pong."""
    sink = Metrics()
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
        sink,
        on_orders=lambda orders: None,
        clock=clock,
        budget=budget,
    )
    task = asyncio.create_task(stream.run(), name=f"{account.name}:doctor-stream")
    deadline = clock.monotonic() + timeout
    try:
        while clock.monotonic() < deadline and not task.done():
            reasons = [key[1] for key, value in sink.ws_reconnects.rows() if value]
            if reasons:
                return StreamResult(reason=str(reasons[0]))
            rtts = [counts for key, counts in sink.ws_rtt.rows() if sum(counts[:-1])]  # type: ignore[index]
            if stream.connected and rtts:
                return StreamResult(rtt=float(rtts[0][-1]))  # type: ignore[index]
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
