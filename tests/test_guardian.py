"""Guardian liveness: the pure switch, and the guardian on the simulator behind the real liveness route.

DCP timers run at 0.1x (a 10 s window lasts 1 s); the liveness timeout is 1 s.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from helpers import eventually, free_port

from exporter.config import AccountConfig, Config, GuardianLiveness
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.monitor.guardian import add_liveness_route
from exporter.monitor.liveness import Switch
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.web import make_app

KEY, SECRET, TOKEN = "guard-key-0001", "guard-secret-0001", "bot-token-0001"
TIMEOUT = 1.0
pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ the pure switch


def test_the_switch_starts_released_arms_on_a_sign_and_lets_go_after_the_timeout():
    switch = Switch(timeout=30)
    assert switch.decide(now=0) is None and not switch.armed and switch.next_decision() is None
    switch.sign_of_life(at=10)
    assert switch.decide(now=10) == "armed" and switch.next_decision() == 40
    switch.sign_of_life(at=5)  # an older sign changes nothing
    assert switch.decide(now=39.9) is None and switch.armed
    assert switch.decide(now=40) == "released" and switch.decide(now=41) is None
    switch.sign_of_life(at=50)
    assert switch.decide(now=50) == "armed"


def test_a_stale_sign_never_arms():
    switch = Switch(timeout=30)
    switch.sign_of_life(at=0)  # e.g. a file last touched long ago
    assert switch.decide(now=31) is None and not switch.armed


# ------------------------------------------------------------------ on the simulator


@pytest.fixture
async def guarded(session):
    """The simulator, a fleet with one guardian-liveness account, and the liveness route on loopback."""
    async with Simulator(time_scale=0.1) as sim:
        sim.add_account(KEY, SECRET)
        account = AccountConfig(
            name="bot",
            api_key=KEY,
            api_secret=Secret(SECRET),
            environment="custom",
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            mode="guardian",
            guardian_products=("DERIVATIVES",),
            ping_interval=0.5,
            pong_timeout=0.25,
            poll_interval=1.0,
            guardian_liveness=GuardianLiveness("http", TIMEOUT, token=Secret(TOKEN)),
        )
        metrics = Metrics()
        fleet = Fleet(Config(accounts=[account]), metrics)
        app = make_app(metrics, fleet)
        add_liveness_route(app, fleet.guardian)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await fleet.start()
        try:
            yield sim, fleet, metrics, f"http://127.0.0.1:{port}/api/v1/accounts/bot/liveness"
        finally:
            await fleet.stop()
            await runner.cleanup()


def dcp_connections(sim: Simulator) -> list:
    return [c for c in sim.connection_info() if any(t.startswith("dcp.") for t in c.topics)]


def value(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


async def test_the_guardian_holds_dcp_for_a_live_bot_lets_go_when_it_stops_and_rearms(guarded, session):
    sim, fleet, metrics, url = guarded
    order = sim.place_order(KEY, category="linear")
    await eventually(lambda: sim.connection_info(), what="the observer connection")
    assert dcp_connections(sim) == [] and value(metrics.guardian_armed, "bot", "DERIVATIVES") == 0  # starts disarmed

    async with session.post(url, headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401
    async with session.post(url) as resp:
        assert resp.status == 401
    assert value(metrics.guardian_liveness_rejected, "bot") == 2
    assert dcp_connections(sim) == []  # a bad token never arms

    last_sign = 0.0

    async def bot(seconds: float) -> None:
        nonlocal last_sign
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            async with session.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 204
            last_sign = time.monotonic()
            await asyncio.sleep(0.2)

    living = asyncio.create_task(bot(3.0))  # three DCP windows
    await eventually(lambda: value(metrics.guardian_armed, "bot", "DERIVATIVES") == 1, what="the guardian to arm")
    await living
    assert sim.account(KEY).orders[order["orderId"]]["orderStatus"] == "New"  # held across the window
    # The observer connection never subscribes dcp.*: the guarded one is separate.
    assert [sorted(c.topics) for c in dcp_connections(sim)] == [["dcp.future"]]
    assert {"order"} in [set(c.topics) for c in sim.connection_info()]

    await eventually(lambda: not dcp_connections(sim), timeout=TIMEOUT + 2, what="the guardian to let go")
    let_go = time.monotonic() - last_sign
    print(f"guardian let-go latency: {let_go:.2f} s after the last sign (timeout {TIMEOUT:g} s)")
    assert let_go <= TIMEOUT + 1.0
    await eventually(
        lambda: value(metrics.triggers, "bot", "DERIVATIVES") == 1, timeout=5, what="DCP to fire and be counted"
    )
    assert sim.account(KEY).orders[order["orderId"]]["cancelType"] == "CancelByDCP"
    assert value(metrics.guardian_transitions, "bot", "released") == 1
    assert value(metrics.ws_connected, "bot") == 1  # letting go never blinds the exporter

    returning = asyncio.create_task(bot(0.5))
    await eventually(lambda: dcp_connections(sim), what="the guardian to re-arm")
    await returning
    assert value(metrics.guardian_transitions, "bot", "armed") == 2


async def test_the_route_knows_only_guardians_with_http_liveness(guarded, session):
    _, _, _, url = guarded
    async with session.post(url.replace("/bot/", "/nobody/"), headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 404
