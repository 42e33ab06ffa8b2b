"""One time frame: the whole exporter on a host clock that is off, against the simulator on loopback.

Bybit's time is the simulator's (the real clock); the exporter's comes from a
:class:`~helpers.ShiftedClock`. Each test is one finding: a forged pong must not stretch the
next auth's expiry, a host clock behind Bybit must not keep the stream down, and a host clock
ahead of Bybit must not hide the gap's DCP cancels from the backfill.
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest
from account_harness import KEY, TIME_SCALE, account, protected_client
from helpers import ShiftedClock, eventually

from exporter.bybit.errors import TimestampError
from exporter.bybit.stream import StreamConfig
from exporter.config import Config, GuardianLiveness
from exporter.dcp import ENDPOINT_PATHS
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.monitor.parts import build_parts
from exporter.runtime.clock import SYSTEM_CLOCK, Clock
from exporter.simulator import Simulator

SEVENTY_YEARS = 70 * 365 * 24 * 3600.0
AUTH_EXPIRY = StreamConfig.auth_expiry
QUERY_DCP_INFO = ENDPOINT_PATHS["query_dcp_info"]
SERVER_TIME = ENDPOINT_PATHS["server_time"]


@pytest.fixture
async def sim():
    async with Simulator(time_scale=TIME_SCALE) as s:
        s.add_account(KEY)
        yield s


class Exporter:
    def __init__(self, fleet: Fleet, metrics: Metrics) -> None:
        self.fleet, self.metrics = fleet, metrics

    def local(self, name: str, **labels) -> float | None:
        return self.metrics.registry.get_sample_value(name, {"account": "a", **labels})


@asynccontextmanager
async def exporter(sim: Simulator, clock: Clock = SYSTEM_CLOCK, **overrides):
    metrics = Metrics()
    fleet = Fleet(Config(accounts=[account(sim, **overrides)]), metrics, clock=clock)
    await fleet.start()
    try:
        yield Exporter(fleet, metrics)
    finally:
        await fleet.stop()


def auth_frames(sim: Simulator) -> list[dict]:
    return [f for _, f in sim.account(KEY).ws_frames if f.get("op") == "auth"]


async def test_a_forged_pong_never_stretches_the_next_auth_expiry(sim):
    """A pong claiming Bybit's clock is 70 years ahead is refused, counted, and not applied:
    the auth after the reconnect expires at most ``auth_expiry`` past Bybit's now."""
    sim.forge_pong_clock(KEY, SEVENTY_YEARS)
    async with exporter(sim) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_ping_rtt_seconds_count"), what="a forged pong read")
        await eventually(lambda: r.local("bybit_dcp_clock_skew_refused_total", source="pong"), what="refused")
        assert r.local("bybit_dcp_clock_skew_refused_total", source="server_time") == 0
        first = len(auth_frames(sim))
        sim.close_connections(KEY)
        await eventually(lambda: len(auth_frames(sim)) > first, what="the next auth")
        sent_by = time.time()  # Bybit's now (the simulator's clock) after the frame arrived
        expires_ms = int(auth_frames(sim)[first]["args"][1])
        assert expires_ms <= (sent_by + AUTH_EXPIRY) * 1000
        assert expires_ms > (sent_by - 5) * 1000  # still a valid auth, not one from the past
        await eventually(lambda: r.local("bybit_dcp_ws_connected") == 1, what="the stream back up")


async def test_a_host_clock_a_minute_behind_bybit_brings_the_stream_up_at_once(sim):
    """Bybit's server time is read before the first auth: the expiry is in Bybit's time, so the
    first auth is accepted (before, every auth was refused for as long as the clock lagged)."""
    behind = ShiftedClock(lambda: time.time() - 60.0)
    async with exporter(sim, behind) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_connected") == 1, timeout=5, what="the stream up")
        assert r.local("bybit_dcp_ws_reconnects_total", reason="auth_failed") == 0
        first = auth_frames(sim)[0]
        assert int(first["args"][1]) > time.time() * 1000  # valid by Bybit's clock
        assert r.local("bybit_dcp_clock_skew_refused_total", source="server_time") == 0
        # and REST signs in the same frame: a poll succeeded
        await eventually(lambda: r.local("bybit_dcp_last_poll_success_timestamp_seconds"), what="a poll")


async def test_a_host_clock_an_hour_ahead_still_finds_the_gaps_dcp_cancels(sim):
    """The backfill's window and its filter on updatedTime are in Bybit's time: with the host
    an hour ahead, the DCP cancel made while the stream was silent is found after the reconnect."""
    ahead = ShiftedClock(lambda: time.time() + 3600.0)
    async with exporter(sim, ahead, ping_interval=2.0, pong_timeout=1.0) as r:
        sup = r.fleet.supervisors["a"]
        await eventually(lambda: r.local("bybit_dcp_ws_connected") == 1, what="the stream up")
        sim.place_order(KEY, category="linear")
        async with protected_client(sim, KEY, "dcp.future"):
            sim.stall(KEY, True)  # our stream goes silent; the bot dies; DCP fires unseen
        await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")
        assert r.local("bybit_dcp_cancelled_orders_total", category="linear") == 0
        await eventually(lambda: sup.backfill.gaps_read >= 1, timeout=15, what="the backfill after reconnecting")
        assert r.local("bybit_dcp_cancelled_orders_total", category="linear") == 1
        assert r.local("bybit_dcp_triggers_total", product="DERIVATIVES") == 1


async def test_a_server_time_a_century_ahead_after_a_10002_is_refused_and_the_stream_keeps_bybits_time(sim):
    """The account's REST client and stream share one frame (build_parts): a 10002 answered by a
    server time from 2096 is refused and counted, and the stream's auth is still in Bybit's time."""
    metrics = Metrics()
    metrics.add_account("a", environment="simulator", mode="observer")
    year_2096 = 3_976_214_400
    async with aiohttp.ClientSession() as session:
        parts = build_parts(account(sim), metrics, session)
        assert parts.rest.timeframe is parts.stream.session.timeframe is parts.backfill.timeframe
        sim.force_error(QUERY_DCP_INFO, 10002, count=2)
        sim.force_response(SERVER_TIME, body=json.dumps({"retCode": 0, "result": {"timeSecond": str(year_2096)}}))
        with pytest.raises(TimestampError):
            await parts.rest.query_dcp_info()
        refused = ("bybit_dcp_clock_skew_refused_total", {"account": "a", "source": "server_time"})
        assert metrics.registry.get_sample_value(*refused) == 1
        assert parts.timeframe.offset == 0.0 and not parts.timeframe.known
        frame = json.loads(parts.stream.session.opened(0.0, time.time()))
        assert int(frame["args"][1]) <= (time.time() + AUTH_EXPIRY) * 1000


async def test_the_guarded_connection_of_a_host_a_minute_behind_is_authenticated_in_bybits_time(sim, tmp_path):
    """The guardian's ``dcp.*`` connection shares the account's frame: with the host clock a
    minute behind Bybit its first auth is accepted, so the bot is protected from the first arming."""
    behind = ShiftedClock(lambda: time.time() - 60.0)
    guarded = account(
        sim,
        mode="guardian",
        guardian_products=("DERIVATIVES",),
        guardian_liveness=GuardianLiveness("file", 5.0, path=str(tmp_path / "alive")),
    )
    metrics = Metrics()
    metrics.add_account("a", environment="simulator", mode="guardian")
    async with aiohttp.ClientSession() as session:
        parts = build_parts(guarded, metrics, session, clock=behind)
        assert parts.guardian is not None
        parts.guardian._arm()  # the bot is alive: hold the guarded connection
        try:
            await eventually(
                lambda: any("dcp.future" in c.topics for c in sim.connection_info()),
                timeout=5,
                what="the guarded connection subscribed",
            )
        finally:
            await parts.guardian._let_go()
