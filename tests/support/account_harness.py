"""The whole exporter against the simulator: an account's config, a running fleet with its web
app on loopback, a trading bot's protected connection, and the simulator fixture.

Shared by the supervisor tests (tests/sim) and the status page in a real browser (tests/e2e).
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from helpers import parse_metrics
from websockets.asyncio.client import connect

from exporter.bybit.signing import ws_auth_args
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.web.app import make_app

KEY = "acct-test-key"
TIME_SCALE = 0.02  # Bybit's default 10 s window lasts 0.2 s


def account(sim: Simulator, key: str = KEY, name: str = "a", **overrides) -> AccountConfig:
    settings = dict(
        name=name,
        api_key=key,
        api_secret=Secret(sim.account(key).api_secret),
        environment="simulator",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        ping_interval=0.25,
        pong_timeout=0.2,
        poll_interval=0.3,
    )
    settings.update(overrides)
    return AccountConfig(**settings)


@dataclass
class Running:
    fleet: Fleet
    metrics: Metrics
    base_url: str
    session: aiohttp.ClientSession

    async def scrape(self) -> dict[tuple[str, frozenset], float]:
        async with self.session.get(self.base_url + "/metrics") as resp:
            assert resp.status == 200
            return parse_metrics(await resp.text())

    async def value(self, name: str, **labels) -> float | None:
        return (await self.scrape()).get((name, frozenset(labels.items())))

    def local(self, name: str, **labels) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@asynccontextmanager
async def running(*accounts: AccountConfig):
    metrics = Metrics()
    fleet = Fleet(Config(accounts=list(accounts)), metrics)
    runner = web.AppRunner(make_app(metrics, fleet))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    session = aiohttp.ClientSession()
    await fleet.start()
    try:
        yield Running(fleet, metrics, base, session)
    finally:
        await session.close()
        await fleet.stop()
        await runner.cleanup()


@asynccontextmanager
async def protected_client(sim: Simulator, key: str, topic: str = "dcp.future"):
    """A trading bot's connection: auth, subscribe ``topic``, ping; DCP arms while it lives."""
    async with connect(sim.ws_url) as ws:
        secret = sim.account(key).api_secret
        await ws.send(
            json.dumps({"op": "auth", "req_id": "a", "args": ws_auth_args(key, secret, int((time.time() + 5) * 1000))})
        )
        assert json.loads(await ws.recv())["success"] is True
        await ws.send(json.dumps({"op": "subscribe", "req_id": "s", "args": [topic]}))
        assert json.loads(await ws.recv())["success"] is True
        await ws.send(json.dumps({"op": "ping", "req_id": "p"}))
        assert json.loads(await ws.recv())["op"] == "pong"
        yield ws


@pytest.fixture
async def sim():
    async with Simulator(time_scale=TIME_SCALE) as s:
        s.add_account(KEY)
        yield s


def subscribe_topics(sim: Simulator, key: str) -> list[str]:
    return [
        topic
        for _, frame in sim.account(key).ws_frames
        if frame.get("op") == "subscribe"
        for topic in frame.get("args") or []
    ]
