"""Small clients for the simulator tests: a websockets private-stream client, signed REST
calls, a raw client that stops reading, polling, and a manual clock for the simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import aiohttp
import websockets
from helpers import eventually

from exporter.bybit import signing

KEY, SECRET = "test-key", "test-secret"


async def wait_for(cond, timeout: float = 5.0, interval: float = 0.01):
    """Poll ``cond()`` until it is truthy; fail after ``timeout`` seconds."""
    return await eventually(cond, timeout, interval)


class WsClient:
    """A private-stream client on the websockets library (the exporter's stack)."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls, url: str, key: str | None = None, secret: str | None = None, topics=(), *, ping: bool = False
    ):
        ws = await websockets.connect(url, open_timeout=5, close_timeout=1, ping_interval=None)
        client = cls(ws)
        if key is not None:
            ack = await client.request(
                {
                    "req_id": "auth",
                    "op": "auth",
                    "args": signing.ws_auth_args(key, secret, int(time.time() * 1000) + 10_000),
                }
            )
            assert ack["success"] is True, ack
        if topics:
            ack = await client.request({"req_id": "sub", "op": "subscribe", "args": list(topics)})
            assert ack["success"] is True, ack
        if ping:
            pong = await client.request({"req_id": "hb", "op": "ping"})
            assert pong["op"] == "pong", pong
        return client

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, frame: dict, timeout: float = 5.0) -> dict:
        await self.send(frame)
        return await self.recv(timeout)

    async def recv_until(self, pred, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("expected frame not received in time")
            frame = await self.recv(left)
            if pred(frame):
                return frame

    async def close(self) -> None:
        await self.ws.close()


async def signed_get(
    session: aiohttp.ClientSession,
    base: str,
    path: str,
    key: str,
    secret: str,
    query: str = "",
    *,
    ts_ms: int | None = None,
    recv: int = 5000,
):
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    headers = signing.sign_rest(key, secret, ts, query, recv).as_dict()
    url = f"{base}{path}" + (f"?{query}" if query else "")
    async with session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def signed_post(
    session: aiohttp.ClientSession,
    base: str,
    path: str,
    key: str,
    secret: str,
    body: dict,
    *,
    ts_ms: int | None = None,
    recv: int = 5000,
):
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    raw = json.dumps(body)
    headers = signing.sign_rest(key, secret, ts, raw, recv).as_dict()
    headers["Content-Type"] = "application/json"
    async with session.post(f"{base}{path}", data=raw, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def _client_frame(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + b"\0\0\0\0" + data  # a zero mask leaves the payload as it is


async def silent_client(host: str, port: int, key: str, secret: str) -> asyncio.StreamWriter:
    """A raw websocket client that authenticates and then never reads again."""
    reader, writer = await asyncio.open_connection(host, port)
    nonce = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /v5/private HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    args = signing.ws_auth_args(key, secret, int(time.time() * 1000) + 10_000)
    writer.write(_client_frame(json.dumps({"req_id": "auth", "op": "auth", "args": args})))
    await writer.drain()
    await asyncio.wait_for(reader.read(2), 5)  # the answer has begun: authenticated
    writer.transport.pause_reading()
    return writer
