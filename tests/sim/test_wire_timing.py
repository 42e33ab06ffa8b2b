"""The exporter measures Bybit, not itself: spread schedules, timestamps at the wire, lasting
connections, and the proof at N = 300 against an independent client (tests/support/wire_timing.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import pytest
from helpers import eventually, rest_client
from virtual_clock import VirtualClock, settle
from websockets.asyncio.client import connect
from wire_timing import Setup, measure

from exporter.bybit.heartbeat import Heartbeat
from exporter.bybit.pacing import PHASE_STEP, next_slot, stable_phase
from exporter.bybit.wire import session_tracing, stamped_connection
from exporter.http.pool import Pool
from exporter.metrics import Metrics
from exporter.monitor.rest_metrics import PoolMetrics
from exporter.runtime.clock import SYSTEM_CLOCK
from exporter.runtime.loop_lag import LOOP_LAG_PERIOD, watch_loop_lag
from exporter.simulator import Simulator

KEY = "wire-key"
SECRET = "wire-secret-0123456789"


# ---------------------------------------------------------------- spread


def test_phase_is_stable_per_name_and_purpose_and_within_the_interval():
    assert stable_phase("desk-a", "ping", 20.0) == stable_phase("desk-a", "ping", 20.0)
    assert stable_phase("desk-a", "ping", 20.0) != stable_phase("desk-b", "ping", 20.0)
    assert stable_phase("desk-a", "ping", 20.0) != stable_phase("desk-a", "poll", 20.0)
    assert all(0.0 <= stable_phase(f"acct-{i}", "ping", 20.0) < 20.0 for i in range(1000))


def test_a_thousand_accounts_spread_their_pings_evenly_over_the_interval_in_shared_steps():
    # Before: every account pinged in the same instant (up to 587 pings within 100 ms).
    phases = [stable_phase(f"acct-{i:04d}", "ping", 20.0) for i in range(1000)]
    assert all(p / PHASE_STEP == int(p / PHASE_STEP) for p in phases)  # on the 250 ms steps
    steps = [0] * 80
    for p in phases:
        steps[int(p / PHASE_STEP)] += 1
    assert max(steps) <= 30  # 12.5 expected per step; a uniform spread rarely more than doubles it
    assert sum(1 for n in steps if n) >= 75  # and nearly every step has some


def test_a_short_interval_keeps_80_steps():
    phases = {stable_phase(f"acct-{i:04d}", "ping", 1.0) for i in range(1000)}
    assert len(phases) == 80 and max(phases) < 1.0


def test_next_slot_keeps_the_grid_whatever_the_wake_up_time():
    assert next_slot(0.0, 20.0, 7.5) == 7.5
    assert next_slot(7.5, 20.0, 7.5) == 27.5  # strictly after now
    assert next_slot(8.9, 20.0, 7.5) == 27.5  # a late ping does not shift the later ones
    assert next_slot(1000.0, 20.0, 0.0) == 1020.0


def test_heartbeat_pings_at_once_on_connect_then_on_its_grid_across_reconnects():
    hb = Heartbeat(ping_interval=20, pong_timeout=10, phase=7.5)
    hb.on_connected(3.0)
    assert hb.ping_due(3.0)
    hb.on_ping_sent("p1", 3.0)
    assert hb.deadline() == 7.5 and not hb.ping_due(7.4) and hb.ping_due(7.5)
    hb.on_pong("p1", 3.05)
    hb.on_ping_sent("p2", 7.6)
    assert hb.deadline() == pytest.approx(17.6)  # the pong timeout of p2 comes first
    hb.on_pong("p2", 7.65)
    assert hb.deadline() == 27.5
    hb.on_disconnected()
    hb.on_connected(50.0)  # a reconnect: one ping at once, then back in the same slot
    hb.on_ping_sent("p3", 50.0)
    hb.on_pong("p3", 50.05)
    assert hb.deadline() == 67.5
    with pytest.raises(ValueError):
        Heartbeat(20, 10, phase=20.0)


# ---------------------------------------------------------------- the wire


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET)
        yield s


async def test_a_message_is_stamped_when_read_off_the_socket_not_when_the_code_gets_to_it(sim):
    clock = VirtualClock()
    async with connect(sim.ws_url, create_connection=stamped_connection(clock)) as ws:
        await ws.send(json.dumps({"req_id": "p1", "op": "ping"}))
        await eventually(lambda: ws._arrivals, what="the pong read off the socket")
        await clock.advance(5.0)  # the loop was busy elsewhere before the stream read it
        message, arrived = await ws.recv_stamped()
        assert json.loads(message)["op"] == "pong"
        assert arrived == 0.0 and clock.monotonic() == 5.0


@contextlib.asynccontextmanager
async def one_connection(kind: str, metrics: Metrics):
    """A REST pool of one connection, timed into ``metrics``: the fleet's own, or an aiohttp
    session with the wire-timing trace hooks (the calls through a proxy)."""
    if kind == "pool":
        pool = Pool(observer=PoolMetrics(metrics), limit=1)
        try:
            yield pool
        finally:
            await pool.close()
        return
    connector = aiohttp.TCPConnector(limit=1)
    tracing = session_tracing(SYSTEM_CLOCK, PoolMetrics(metrics))
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
        yield session


@pytest.mark.parametrize("kind", ["pool", "aiohttp"])
async def test_rest_duration_leaves_out_the_pool_wait_and_connections_are_reused(sim, kind):
    metrics = Metrics()
    async with one_connection(kind, metrics) as session:
        client = rest_client(session, sim.rest_url, metrics, KEY, SECRET, account="a")
        for _ in range(5):
            await client.server_time()
        assert metrics.registry.get_sample_value("bybit_dcp_api_connections_opened_total") == 1

        # One slot: the second call waits for the first, which the server holds for 0.3 s.
        now = int(time.time())
        body = json.dumps({"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(now)}, "time": now * 1000})
        sim.force_response("/v5/market/time", body=body, delay=0.3)
        await asyncio.gather(client.server_time(), client.server_time())

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    assert value("bybit_dcp_api_connection_wait_seconds_count") == 7
    assert value("bybit_dcp_api_connection_wait_seconds_sum") >= 0.25  # the second call's wait
    durations = value("bybit_dcp_api_request_duration_seconds_sum", environment="testnet", endpoint="server_time")
    # 0.3 s for the held call plus next to nothing for six quick ones: the wait is not in it.
    assert 0.3 <= durations < 0.45
    assert value("bybit_dcp_api_connections_opened_total") == 1


async def test_event_loop_lag_is_sampled_on_the_fleet_clock():
    clock = VirtualClock()
    metrics = Metrics()
    task = asyncio.create_task(watch_loop_lag(clock, metrics.event_loop_lag.observe))
    try:
        await settle()
        await clock.advance(LOOP_LAG_PERIOD * 4)
        assert metrics.registry.get_sample_value("bybit_dcp_exporter_event_loop_lag_seconds_count") == 4
        assert metrics.registry.get_sample_value("bybit_dcp_exporter_event_loop_lag_seconds_sum") == 0.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------- the proof at N = 300


@pytest.mark.e2e  # 300 accounts and an independent client in processes of their own: a proof, not a check
async def test_at_300_accounts_the_exporter_sees_what_an_independent_client_sees():
    """A fake in its own process with 50 ms of pong delay; pings and polls every 2 s and
    scrapes every 3 s (shortened from Bybit's 20 s, the default 30 s and Prometheus's 10 s to
    keep the test short; the load per second is higher than at those settings)."""
    figures = await measure(
        Setup(accounts=300, pong_delay=0.05, ping_interval=2.0, poll_interval=2.0, scrape_interval=3.0, window=10.0)
    )
    report = "\n".join(figures.lines())
    print(report)  # the figures, for -rP
    assert figures.pings >= 300 * 4 and figures.polls >= 300 * 4 and figures.scrapes >= 3, report
    rtt_gap = abs(figures.exporter_rtt_ms - figures.probe_rtt_ms)
    assert rtt_gap <= max(0.05 * figures.probe_rtt_ms, 2.0), report
    assert abs(figures.exporter_rest_ms - figures.probe_rest_ms) <= 5.0, report
    assert figures.connections_opened == 0, report  # steady state reuses its connections


@pytest.mark.parametrize("kind", ["pool", "aiohttp"])
async def test_bybits_time_is_read_from_when_the_request_left_not_from_its_wait_for_the_pool(sim, kind):
    # A thousand accounts start at once and read Bybit's time through one pool: most wait for a
    # connection first. Timed from before that wait, the midpoint of the call falls early and a
    # host whose clock is right learns that Bybit is ahead by half the wait (at scale, more than
    # Bybit's 1 s allowance for a timestamp ahead of its clock, so every signed call was refused).
    metrics = Metrics()
    async with one_connection(kind, metrics) as session:
        holder = rest_client(session, sim.rest_url, metrics, KEY, SECRET, account="holder")
        reader = rest_client(session, sim.rest_url, metrics, KEY, SECRET, account="reader")
        sim.force_response("/v5/account/info", body=json.dumps({"retCode": 0, "retMsg": "OK", "result": {}}), delay=1.0)
        held = asyncio.create_task(holder.account_info())
        waits = "bybit_dcp_api_connection_wait_seconds_count"
        await eventually(lambda: metrics.registry.get_sample_value(waits), what="the holder holding the one connection")
        assert await reader.learn_time()
        await asyncio.gather(held, return_exceptions=True)
    assert (metrics.registry.get_sample_value("bybit_dcp_api_connection_wait_seconds_sum") or 0) >= 0.8
    assert abs(reader.time_offset) < 0.2  # the simulator's clock is this host's
    skew = metrics.registry.get_sample_value("bybit_dcp_clock_skew_seconds", {"account": "reader"})
    assert skew is not None and abs(skew) < 0.2
