"""The private websocket ``/v5/private``: one :class:`Session` per connection, and
:class:`ServerStream`, the server side of the exporter's private stream, which speaks
Bybit's protocol on it (auth, subscribe, unsubscribe, ping/pong) and feeds the DCP engine
with what the client does.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import frames
from .core import SimCore
from .engine import TOPIC_PRODUCT
from .signatures import ws_auth_string

CLOSE_TIMEOUT = 2.0  # seconds aiohttp waits for the client to answer a close
MAX_FRAME_BYTES = 1 << 20
REFUSED_SUBSCRIBE = "error:subscribe refused by fault injection"  # refuse_subscribe's ret_msg


@dataclass(eq=False)
class Session:
    """One private-websocket connection: who it is authenticated as, what it subscribed, and
    whether a fault has made it a black hole."""

    conn_id: str
    ws: web.WebSocketResponse
    idle_cutoff: float
    transport: asyncio.Transport | None = None
    api_key: str | None = None
    topics: set[str] = field(default_factory=set)
    stalled: bool = False

    async def send(self, frame: dict) -> None:
        await self.send_text(json.dumps(frame, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        """Send, unless the socket is closed or closing: a gone client is no error here."""
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    async def close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code=code, message=reason.encode())
        except (ConnectionError, RuntimeError):
            pass

    def abort(self) -> None:
        """Drop the socket at once, with whatever it still had to send."""
        if self.transport is not None:
            self.transport.abort()

    def write_buffer_bytes(self) -> int:
        """Bytes queued for the client that it has not read yet."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


class ServerStream:
    """The server side of the private stream: the aiohttp handler of ``/v5/private``."""

    def __init__(self, core: SimCore) -> None:
        self._core = core

    async def handle(self, request: web.Request) -> web.StreamResponse:
        core = self._core
        if core.faults.streams_unreachable:  # the stream's host is down; REST still answers
            return web.Response(status=503, text="private stream unreachable (fault injection)")
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT, autoping=True, heartbeat=None, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        max_active = frames.parse_max_active_time(request.query.get("max_active_time"))
        cutoff = core.idle_cutoff if core.idle_cutoff is not None else (max_active or frames.DEFAULT_MAX_ACTIVE)
        transport = request.transport if isinstance(request.transport, asyncio.Transport) else None
        session = Session(frames.new_conn_id(core.rng), ws, cutoff, transport=transport)
        core.sessions[session.conn_id] = session
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(session, msg.data)
        except ConnectionError:
            pass
        finally:
            core.sessions.pop(session.conn_id, None)
            core.engine.close(session.conn_id, core.clock.time())
            core.poke()
        return ws

    async def _on_text(self, session: Session, text: str) -> None:
        core = self._core
        now = core.clock.time()
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if session.api_key is not None and isinstance(frame, dict):
            core.accounts[session.api_key].ws_frames.append((session.conn_id, frame))
        if session.stalled:
            return  # a black hole: not answered, not a heartbeat
        core.engine.activity(session.conn_id, now)
        if not isinstance(frame, dict):
            return
        op, req_id = frame.get("op"), frame.get("req_id")
        if op == "ping":
            core.engine.ping(session.conn_id, now)  # deadlines only move later: no need to wake the ticker
            await self._pong(session, req_id)
        elif op == "auth":
            await self._auth(session, frame, now)
        elif op == "subscribe":
            await self._subscribe(session, frame, now)
        elif op == "unsubscribe":
            await self._unsubscribe(session, frame, now)
        else:
            await self._refuse(session, str(op), req_id, f"error:unknown op {op}")

    async def _pong(self, session: Session, req_id: Any) -> None:
        faults = self._core.faults
        key = session.api_key
        if key is not None and key in faults.dropped_pongs:
            return
        delay = faults.pong_latency.get(key, 0.0) if key is not None else 0.0
        if delay > 0:
            self._core.spawn(self._late_pong(session, req_id, delay))
        else:
            await session.send(frames.pong(session.conn_id, self._pong_time(key), req_id))

    async def _late_pong(self, session: Session, req_id: Any, delay: float) -> None:
        await self._core.clock.sleep(delay)
        if not session.stalled:
            await session.send(frames.pong(session.conn_id, self._pong_time(session.api_key), req_id))

    def _pong_time(self, key: str | None) -> float:
        """The clock a pong reports in ``args[0]``: the simulator's, unless a fault forges it."""
        forged = self._core.faults.pong_clock_offset.get(key, 0.0) if key is not None else 0.0
        return self._core.clock.time() + forged

    async def _auth(self, session: Session, frame: dict, now: float) -> None:
        core = self._core
        req_id = frame.get("req_id")
        error = self._auth_error(session, frame.get("args"), now)
        if error is not None:
            await self._refuse(session, "auth", req_id, error)
            return
        api_key = frame["args"][0]
        session.api_key = api_key
        core.accounts[api_key].ws_frames.append((session.conn_id, frame))
        core.engine.open(session.conn_id, api_key, now, session.idle_cutoff)
        core.poke()
        await session.send(frames.op_result("auth", session.conn_id, req_id))

    def _auth_error(self, session: Session, args: Any, now: float) -> str | None:
        """Bybit's message for a refused ``auth`` (args ``[api_key, expires_ms, signature]``), or None."""
        if session.api_key is not None:
            return "Request not authorized: already authenticated"
        if not (isinstance(args, list) and len(args) == 3 and isinstance(args[0], str) and isinstance(args[2], str)):
            return "Params Error"
        api_key, expires, signature = args
        try:
            expires_ms = int(expires)
        except (TypeError, ValueError):
            return "Params Error"
        if expires_ms <= int(now * 1000):
            return "Params Error"
        acct = self._core.accounts.get(api_key)
        if acct is None or not acct.verifies(ws_auth_string(expires_ms), signature):
            return "Request not authorized"
        if api_key in self._core.faults.refused_streams:
            return "Request not authorized"
        return None

    async def _subscribe(self, session: Session, frame: dict, now: float) -> None:
        core = self._core
        req_id, topics = frame.get("req_id"), frame.get("args") or []
        if session.api_key is None:
            await self._refuse(session, "subscribe", req_id, "Request not authorized")
            return
        error = frames.check_topics(topics, session.topics)
        if error is None and session.api_key in core.faults.refused_subscribes:
            error = REFUSED_SUBSCRIBE
        if error is not None:
            await self._refuse(session, "subscribe", req_id, error)
            return
        acct = core.accounts[session.api_key]
        for topic in topics:
            session.topics.add(topic)
            acct.note_topic(topic)
            if topic in TOPIC_PRODUCT:
                core.engine.subscribe(session.conn_id, TOPIC_PRODUCT[topic], now)
        await session.send(frames.op_result("subscribe", session.conn_id, req_id))

    async def _unsubscribe(self, session: Session, frame: dict, now: float) -> None:
        core = self._core
        req_id, topics = frame.get("req_id"), frame.get("args")
        if session.api_key is None or not isinstance(topics, list):
            await self._refuse(session, "unsubscribe", req_id, "Params Error")
            return
        for topic in topics:
            if not isinstance(topic, str) or topic not in session.topics:
                continue
            session.topics.discard(topic)
            if topic in TOPIC_PRODUCT:  # no longer a protected connection of that product
                core.engine.unsubscribe(session.conn_id, TOPIC_PRODUCT[topic], now)
                core.poke()
        await session.send(frames.op_result("unsubscribe", session.conn_id, req_id))

    @staticmethod
    async def _refuse(session: Session, op: str, req_id: Any, message: str) -> None:
        await session.send(frames.op_result(op, session.conn_id, req_id, ok=False, message=message))
