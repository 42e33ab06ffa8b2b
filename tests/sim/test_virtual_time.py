"""Timeouts and backoffs on a virtual clock: real sockets, no wall time waited.

The stream's 10 s pong timeout and its reconnect backoff (full jitter from 1 s), and the
supervisor's restart backoff, run at Bybit's real settings; time moves only when the test advances the clock.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import asynccontextmanager

import pytest
from helpers import eventually
from virtual_clock import VirtualClock, settle

from exporter.bybit import stream as stream_module
from exporter.bybit.pacing import RESTART_BACKOFF_MAX, ConnectionBudget
from exporter.bybit.stream import OrdersCallback, PrivateStream, StreamConfig
from exporter.config import AccountConfig
from exporter.metrics import Metrics
from exporter.monitor.account import AccountSupervisor
from exporter.monitor.stream_metrics import StreamMetrics
from exporter.secrets import Secret
from exporter.simulator import Simulator

KEY = "virtual-time-key"
SECRET = "virtual-time-secret-0123456789"
ACCOUNT = "desk-v"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels}) or 0.0


def ping_count(sim: Simulator) -> int:
    return sum(1 for _, frame in sim.account(KEY).ws_frames if frame.get("op") == "ping")


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET)
        yield s


@asynccontextmanager
async def running_stream(
    sim: Simulator, on_orders: OrdersCallback = lambda orders: None, clock: VirtualClock | None = None
):
    """A stream at Bybit's real heartbeat settings (20 s pings, 10 s pong timeout) on a virtual clock."""
    clock = clock if clock is not None else VirtualClock()
    metrics = Metrics(clock=clock.time)
    metrics.add_account(ACCOUNT, environment="test", mode="observer")
    config = StreamConfig(sim.ws_url, KEY, Secret(SECRET), ("order",), ping_interval=20.0, pong_timeout=10.0)
    stream = PrivateStream(
        ACCOUNT,
        config,
        StreamMetrics(metrics, ACCOUNT),
        on_orders=on_orders,
        clock=clock,
        rng=random.Random(11),
        budget=ConnectionBudget(),
    )
    task = asyncio.create_task(stream.run())
    try:
        yield stream, metrics, clock
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_pong_timeout_and_reconnect_backoff_on_virtual_time(sim):
    sim.drop_pongs(KEY)
    async with running_stream(sim) as (stream, metrics, clock):
        await eventually(lambda: stream.connected and ping_count(sim) == 1, what="connected and the first ping sent")
        await settle()
        # The pong watch waits exactly until the pong is overdue: 10 s after the ping, not a moment
        # longer; the heartbeat task sleeps until the next ping, at 20 s.
        assert clock.deadlines() == [10.0, 20.0]
        await clock.advance(9.999)
        assert stream.connected and sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 0

        await clock.advance(0.001)
        await eventually(
            lambda: sample(metrics, "bybit_dcp_ws_reconnects_total", reason="pong_timeout") == 1,
            what="the pong timeout",
        )
        assert sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 1
        assert sample(metrics, "bybit_dcp_ws_connected") == 0
        # Then it backs off on the same clock: full jitter within [0, 1 s] for the first attempt.
        await eventually(lambda: clock.deadlines(), what="the backoff sleep")
        backoff = clock.sleeps[-1]
        assert 0.0 <= backoff <= 1.0 and clock.deadlines() == [pytest.approx(10.0 + backoff)]
        assert ping_count(sim) == 1  # nothing is sent while it waits

        sim.drop_pongs(KEY, False)
        await clock.advance_to(clock.deadlines()[0])
        await eventually(
            lambda: stream.connected and sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") == 1,
            what="reconnected with a pong",
        )
        assert sample(metrics, "bybit_dcp_ws_reconnects_total", reason="pong_timeout") == 1
        # The gap since the last pong is measured on the same clock: 0 right after the pong.
        assert sample(metrics, "bybit_dcp_ws_ping_gap_seconds") == 0.0
        await clock.advance(7.5)
        assert sample(metrics, "bybit_dcp_ws_ping_gap_seconds") == pytest.approx(7.5)


class EarlyAlarmClock(VirtualClock):
    """Its first alarm rings half a second early, as a real timer may ring a hair early."""

    def __init__(self) -> None:
        super().__init__()
        self.alarms: list[float] = []  # every alarm's deadline as asked for

    def call_at(self, when, callback):
        self.alarms.append(when)
        return super().call_at(when - 0.5 if len(self.alarms) == 1 else when, callback)


async def test_a_pong_watch_that_rings_early_watches_on_until_the_deadline(sim):
    sim.drop_pongs(KEY)
    clock = EarlyAlarmClock()
    async with running_stream(sim, clock=clock) as (stream, metrics, _):
        await eventually(lambda: stream.connected and ping_count(sim) == 1, what="connected and the first ping sent")
        await settle()
        await clock.advance(9.5)  # the alarm rang, found the pong not yet overdue, and was set again
        assert clock.alarms == [10.0, 10.0] and clock.deadlines() == [10.0, 20.0]
        await clock.advance(0.499)
        assert stream.connected and sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 0
        await clock.advance(0.001)  # at the deadline itself, not at the next ping (20 s)
        await eventually(
            lambda: sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 1 and not stream.connected,
            what="the pong timeout at 10 s",
        )


async def test_going_silent_disarms_the_pong_watch(sim):
    sim.drop_pongs(KEY)
    async with running_stream(sim) as (stream, metrics, clock):
        await eventually(lambda: stream.connected and ping_count(sim) == 1, what="connected and the first ping sent")
        await settle()
        assert clock.deadlines() == [10.0, 20.0]  # the pong watch and the heartbeat's sleep
        stream.go_silent()
        await settle()
        assert clock.deadlines() == []  # nobody waits for that pong any more
        await clock.advance(60.0)
        assert stream.connected and sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 0
        assert ping_count(sim) == 1


async def test_second_ping_is_due_one_interval_after_the_first(sim):
    async with running_stream(sim) as (stream, metrics, clock):
        await eventually(lambda: sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") == 1, what="the first pong")
        await settle()
        # The pong disarmed its watch: the one deadline left is the next ping, due at 20 s, and the
        # heartbeat task slept once since the first ping (no look at 10 s to find the pong answered).
        assert clock.deadlines() == [20.0]
        beats = len(clock.sleeps)
        await clock.advance(10.0)
        assert clock.deadlines() == [20.0] and len(clock.sleeps) == beats
        assert stream.connected and sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 0
        await clock.advance(9.9)
        assert ping_count(sim) == 1
        await clock.advance(0.1)
        await eventually(lambda: ping_count(sim) == 2, what="the second ping")
        await eventually(lambda: sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") == 2, what="its pong")
        # RTT is measured on the virtual clock, which did not move during the round trip.
        assert sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_sum") == 0.0


def heartbeat_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().endswith(":heartbeat") and not t.done()]


async def test_overdue_pong_never_interrupts_orders_being_handed_on(sim):
    entered, release = asyncio.Event(), asyncio.Event()
    handed: list[str] = []

    async def slow_consumer(orders: list[dict]) -> None:
        entered.set()
        await release.wait()
        handed.extend(o["orderId"] for o in orders)

    async with running_stream(sim, slow_consumer) as (stream, metrics, clock):
        await eventually(lambda: sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") == 1, what="the first pong")
        sim.drop_pongs(KEY)
        placed = sim.place_order(KEY, category="linear")
        await eventually(entered.is_set, what="the order push handed on")
        await clock.advance(20.0)
        await eventually(lambda: ping_count(sim) == 2, what="the second ping")
        await clock.advance(10.0)  # its pong is now overdue
        await settle()
        assert sample(metrics, "bybit_dcp_ws_pong_timeouts_total") == 1
        # The connection is given up on, but the orders in hand are handed on first.
        assert stream.connected and handed == []
        release.set()
        await eventually(
            lambda: sample(metrics, "bybit_dcp_ws_reconnects_total", reason="pong_timeout") == 1,
            what="the reconnect after the orders",
        )
        assert handed == [placed["orderId"]]
        assert sample(metrics, "bybit_dcp_ws_connected") == 0
    assert heartbeat_tasks() == []  # nothing of the stream outlives it


async def test_a_failing_heartbeat_ends_the_connection_instead_of_going_quiet(sim, monkeypatch, caplog):
    real_ping_frame = stream_module.msg.ping_frame
    failures = iter([RuntimeError("a bug in the heartbeat")])

    def ping_frame_failing_once(req_id: str) -> str:
        for failure in failures:
            raise failure
        return real_ping_frame(req_id)

    monkeypatch.setattr(stream_module.msg, "ping_frame", ping_frame_failing_once)
    async with running_stream(sim) as (stream, metrics, clock):
        await eventually(
            lambda: sample(metrics, "bybit_dcp_ws_reconnects_total", reason="error") == 1, what="the reconnect"
        )
        assert any(r.getMessage() == "heartbeat failed unexpectedly" for r in caplog.records)
        assert ping_count(sim) == 0 and len(heartbeat_tasks()) == 0
        await eventually(lambda: clock.deadlines(), what="the backoff sleep")
        await clock.advance_to(clock.deadlines()[0])
        await eventually(
            lambda: sample(metrics, "bybit_dcp_ws_ping_rtt_seconds_count") == 1, what="a pong on the next connection"
        )
        assert stream.connected and len(heartbeat_tasks()) == 1


async def test_supervisor_restarts_a_crashing_part_with_doubling_backoff(session):
    clock = VirtualClock()
    account = AccountConfig(
        name=ACCOUNT,
        api_key=KEY,
        api_secret=Secret(SECRET),
        environment="simulator",
        rest_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9/v5/private",
    )
    supervisor = AccountSupervisor(account, Metrics(clock=clock.time), session, clock=clock, rng=random.Random(5))
    starts: list[float] = []

    async def crash() -> None:
        starts.append(clock.monotonic())
        raise RuntimeError("a bug in a part")

    task = asyncio.create_task(supervisor.keep_running("poller", crash))
    try:
        for failures in range(1, 9):
            await settle()
            assert len(starts) == failures  # one start per elapsed backoff, never more
            delay = clock.sleeps[-1]
            ceiling = min(RESTART_BACKOFF_MAX, 2.0 ** (failures - 1))
            assert 0.5 * ceiling <= delay <= ceiling  # equal jitter, doubling from 1 s, capped at 60 s
            restart_at = clock.monotonic() + delay
            await clock.advance_to(restart_at - 0.001)
            assert len(starts) == failures  # not a moment early
            await clock.advance_to(restart_at)
        assert len(starts) == 9

        # A part that ran well for longer than the cap starts its backoff afresh.
        async def runs_then_crashes() -> None:
            await clock.sleep(RESTART_BACKOFF_MAX + 1)
            raise RuntimeError("crashed after a good run")

        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        task = asyncio.create_task(supervisor.keep_running("stream", runs_then_crashes))
        await settle()
        await clock.advance(RESTART_BACKOFF_MAX + 1)
        assert 0.5 <= clock.sleeps[-1] <= 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
