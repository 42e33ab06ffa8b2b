"""Connections to Bybit over TLS, against the simulator serving https:// and wss:// on loopback.

Every connection shares one verifying client context: asyncio, given ``ssl=True``, would load
the system's trust store again for each one (about 0.8 MB and 19 ms a connection) and keep it
as long as the connection lives.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import gc
import random
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from helpers import bare_stream, eventually
from websockets.asyncio.client import connect

from exporter.bybit import tls
from exporter.bybit.pacing import ConnectionBudget, Pacing
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.simulator.pki import ServerPki, make_server_pki
from exporter.simulator.server import server_tls

ACCOUNTS = 4


@pytest.fixture
def pki(tmp_path: Path) -> ServerPki:
    return make_server_pki(tmp_path)


@pytest.fixture
def trusted(pki: ServerPki, monkeypatch: pytest.MonkeyPatch):
    """The process trusts the simulator's CA (as ``SSL_CERT_FILE`` makes it), from a fresh shared context."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    tls.client_context.cache_clear()
    yield
    tls.client_context.cache_clear()  # the next test gets the system's trust store again


@pytest.fixture
async def secure_sim(pki: ServerPki):
    sim = Simulator()
    await sim.start(tls=server_tls(pki.cert, pki.key))
    try:
        yield sim
    finally:
        await sim.stop()


def client_tls_objects() -> list[ssl.SSLObject]:
    """The client ends of the TLS connections in this process; ``gc.get_objects`` does not see
    what the fleet froze after start-up (exporter.runtime.pauses), hence the unfreeze."""
    gc.unfreeze()
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, ssl.SSLObject) and not o.server_side]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_fleet_over_tls_polls_and_pongs_with_one_context_for_all(secure_sim: Simulator, trusted: None):
    assert secure_sim.rest_url.startswith("https://") and secure_sim.ws_url.startswith("wss://")
    names = [f"desk-{i}" for i in range(ACCOUNTS)]
    accounts = []
    for name in names:
        key, secret = f"key-{name}", f"secret-{name}"
        secure_sim.add_account(key, secret)
        accounts.append(
            AccountConfig(
                name=name,
                api_key=key,
                api_secret=Secret(secret),
                rest_url=secure_sim.rest_url,
                ws_url=secure_sim.ws_url,
            )
        )
    metrics = Metrics()
    before = {id(o) for o in client_tls_objects()}
    async with Fleet(Config(accounts=accounts), metrics, pacing=Pacing(budget=ConnectionBudget())):
        for name in names:
            for series in ("bybit_dcp_ws_connected", "bybit_dcp_up", "bybit_dcp_ws_ping_rtt_seconds_count"):
                await eventually(
                    lambda n=name, s=series: value(metrics, s, account=n) >= 1, 10.0, 0.02, f"{series} of {name}"
                )
        ours = [o for o in client_tls_objects() if id(o) not in before]
        # Four streams and at least one REST connection, all on the one shared context.
        assert len(ours) > ACCOUNTS
        assert {id(o.context) for o in ours} == {id(tls.client_context())}


async def test_a_stream_refuses_a_server_it_does_not_trust(secure_sim: Simulator, trusted: None, tmp_path: Path):
    """Sharing the context keeps verification: a CA the process does not trust is an error, not a connection."""
    (tmp_path / "stranger").mkdir()
    stranger = make_server_pki(tmp_path / "stranger")
    impostor = Simulator()
    await impostor.start(tls=server_tls(stranger.cert, stranger.key))
    impostor.add_account("key", "secret")
    metrics = Metrics()
    stream = bare_stream(impostor.ws_url, metrics, handshake_timeout=2.0)
    task = asyncio.create_task(stream.run())
    try:
        await eventually(
            lambda: value(metrics, "bybit_dcp_ws_reconnects_total", account="desk-a", reason="error") >= 1, 10.0
        )
        assert not stream.connected
        assert impostor.connections() == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await impostor.stop()


def test_plain_urls_get_no_context_and_secure_ones_the_shared_one():
    assert tls.context_for("ws://127.0.0.1:1/v5/private") is None
    assert tls.context_for("http://127.0.0.1:1") is None
    assert tls.context_for(None) is None
    shared = tls.client_context()
    assert tls.context_for("wss://stream.bybit.com/v5/private") is shared
    assert tls.context_for("HTTPS://api.bybit.com") is shared
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert tls.session_context(["http://127.0.0.1:1"]) is True
    assert tls.session_context(["http://127.0.0.1:1", "https://api.bybit.com"]) is shared


async def test_lean_read_buffers_keep_large_answers_whole(pki: ServerPki, monkeypatch: pytest.MonkeyPatch):
    """With a read buffer of one TLS record, a 1 MB HTTP body and a 300 KB websocket message arrive intact."""
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", asyncio.sslproto.SSLProtocol.max_size)  # restored
    tls.lean_read_buffers()
    assert asyncio.sslproto.SSLProtocol.max_size == tls.READ_BUFFER_BYTES
    tls.lean_read_buffers()  # twice is the same, and it never grows the buffer back
    assert asyncio.sslproto.SSLProtocol.max_size == tls.READ_BUFFER_BYTES

    body = random.Random(7).randbytes(1_000_000)
    message = "x" * 300_000

    async def big(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str(message)
            await ws.close()
            return ws
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls(pki.cert, pki.key))
    await site.start()
    port = runner.addresses[0][1]
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    try:
        async with aiohttp.ClientSession() as session, session.get(f"https://127.0.0.1:{port}/", ssl=trusting) as resp:
            assert await resp.read() == body
        async with connect(f"wss://127.0.0.1:{port}/ws", ssl=trusting, max_size=2**20, proxy=None) as ws:
            assert await ws.recv() == message
    finally:
        await runner.cleanup()
