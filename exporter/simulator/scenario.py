"""A scripted day in the life of a trading account, for ``--demo`` and drills.

Keeps resting orders on the book, varies the pong latency, drops the account's connections
now and then, changes the SPOT window behind the client's back now and then (a "manual
change" for drift and re-assertion to notice), and every few minutes plays a trading bot
that holds the only protected (``dcp.*``) connection and then disappears, so DCP fires and
cancels the resting orders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import websockets

from .clock import wait_event
from .server import Simulator
from .signatures import ws_auth_args

log = logging.getLogger("exporter.simulator.scenario")

ORDER_CATEGORIES = ("linear", "spot")
DRIFT_PRODUCT = "SPOT"
DRIFT_WINDOW = 30


def top_up_orders(sim: Simulator, api_key: str, per_category: int, rng: random.Random) -> None:
    """Place resting limit orders until each category has ``per_category`` of them."""
    acct = sim.account(api_key)
    for category in ORDER_CATEGORIES:
        missing = per_category - len(acct.active_orders((category,)))
        for _ in range(max(missing, 0)):
            side = rng.choice(("Buy", "Sell"))
            price = 60000 + rng.randint(-3000, 3000) if side == "Buy" else 70000 + rng.randint(-3000, 3000)
            sim.place_order(api_key, category=category, symbol="BTCUSDT", side=side, qty="0.01", price=str(price))


async def protected_session(sim: Simulator, api_key: str, topics=("dcp.future", "dcp.spot"), hold: float = 1.0) -> bool:
    """Be a trading bot for ``hold`` seconds: auth, subscribe ``dcp.*``, ping, then vanish.

    Returns False if the account cannot be driven (an RSA account: no secret to sign with).
    """
    acct = sim.account(api_key)
    if not acct.api_secret:
        return False
    async with websockets.connect(sim.ws_url, open_timeout=5, close_timeout=2) as ws:
        expires = int(sim.clock.time() * 1000) + 10_000
        auth = {"req_id": "bot-auth", "op": "auth", "args": ws_auth_args(api_key, acct.api_secret, expires)}
        await ws.send(json.dumps(auth))
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"req_id": "bot-sub", "op": "subscribe", "args": list(topics)}))
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"req_id": "bot-ping", "op": "ping"}))
        await asyncio.wait_for(ws.recv(), 5)
        await sim.clock.sleep(hold)
    return True


async def run_demo_scenario(
    sim: Simulator,
    api_key: str,
    *,
    stop: asyncio.Event,
    rng: random.Random | None = None,
    orders_per_category: int = 3,
    first_trigger_after: float = 30.0,
    trigger_every: float = 180.0,
    latency_every: float = 15.0,
    reconnect_every: float = 120.0,
    first_drift_after: float = 50.0,
    drift_every: float = 240.0,
    step: float = 1.0,
) -> None:
    """Run until ``stop`` is set. Every wait is bounded and wakes up on ``stop``; the pace is
    kept by the simulator's clock."""
    rng = rng if rng is not None else random.Random()
    clock = sim.clock
    start = clock.time()
    next_trigger = start + first_trigger_after
    next_latency = start
    next_reconnect = start + reconnect_every
    next_drift = start + first_drift_after
    top_up_orders(sim, api_key, orders_per_category, rng)
    while not stop.is_set():
        now = clock.time()
        if now >= next_latency:
            sim.set_pong_latency(api_key, rng.uniform(0.005, 0.120))
            next_latency = now + latency_every
        if now >= next_reconnect:
            log.info("scenario: closing the account's connections")
            sim.close_connections(api_key, code=1001, reason="scenario: server restart")
            next_reconnect = now + reconnect_every * rng.uniform(0.8, 1.2)
        if now >= next_drift:
            next_drift = now + drift_every
            if DRIFT_PRODUCT in sim.account(api_key).dcp:
                log.info("scenario: %s window changed to %d s behind the client's back", DRIFT_PRODUCT, DRIFT_WINDOW)
                sim.set_dcp(api_key, DRIFT_PRODUCT, DRIFT_WINDOW)
        if now >= next_trigger:
            next_trigger = now + trigger_every
            top_up_orders(sim, api_key, orders_per_category, rng)
            before = len(sim.account(api_key).triggers)
            try:
                driven = await protected_session(sim, api_key)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.warning("scenario: the protected session failed: %s", exc)
                driven = False
            if driven:
                window = max(sim.account(api_key).dcp.values(), default=10) * sim.time_scale
                deadline = clock.time() + window + 5.0
                while len(sim.account(api_key).triggers) == before and clock.time() < deadline:
                    if await wait_event(clock, stop, 0.2):
                        return
                log.info("scenario: DCP trigger done; placing new orders")
        top_up_orders(sim, api_key, orders_per_category, rng)
        if await wait_event(clock, stop, step):
            return
