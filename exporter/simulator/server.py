"""The simulator's I/O shell: one aiohttp application serving Bybit V5 REST, the private
websocket ``/v5/private`` and a loopback-only control surface under ``/__sim__``.

Decisions live in the sans-I/O parts (:mod:`.engine`, :mod:`.rest`, :mod:`.frames`,
:mod:`.ratelimit`); this module moves bytes and time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from ..bybit import signing
from . import frames
from .accounts import DEFAULT_DCP, SimAccount, new_secret
from .engine import CATEGORIES, PRODUCT_CATEGORIES, PRODUCTS, TOPIC_PRODUCT, DcpEngine, Trigger, valid_window
from .ratelimit import RateLimiter
from .rest import ApiError
from . import rest as R

log = logging.getLogger("exporter.simulator")

DCP_PATHS = ("/v5/account/query-dcp-info", "/v5/order/disconnected-cancel-all")
CONTROL_PREFIX = "/__sim__"
CLOSE_WAIT = 2.0  # seconds stop() gives the clients to answer the close handshake
CONTROL_METHODS = (
    "set_pong_latency",
    "drop_pongs",
    "stall",
    "close_connections",
    "force_error",
    "clear_errors",
    "send_malformed",
    "set_dcp",
    "reset_faults",
    "place_order",
)


@dataclass
class _Conn:
    conn_id: str
    ws: web.WebSocketResponse
    idle_cutoff: float
    transport: asyncio.BaseTransport | None = None
    api_key: str | None = None
    topics: set[str] = field(default_factory=set)
    stalled: bool = False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Simulator:
    """A fake Bybit V5 on loopback. See docs/simulator.md."""

    def __init__(
        self,
        time_scale: float = 1.0,
        settle_delay: float = 0.0,
        idle_cutoff: float | None = None,
        rate_limit_per_second: int = 5,
        other_rate_limit_per_second: int | None = None,
    ) -> None:
        self.time_scale = time_scale
        self.settle_delay = settle_delay
        self.idle_cutoff = idle_cutoff
        self._accounts: dict[str, SimAccount] = {}
        self._conns: dict[str, _Conn] = {}
        self._engine = DcpEngine(self._window_of)
        if other_rate_limit_per_second is None:  # raising the DCP limit raises the others too
            other_rate_limit_per_second = max(20, rate_limit_per_second)
        self._limiter = RateLimiter({p: rate_limit_per_second for p in DCP_PATHS}, other_rate_limit_per_second)
        self._pong_latency: dict[str, float] = {}
        self._drop_pongs: set[str] = set()
        self._forced: dict[str, list] = {}  # path -> [ret_code, remaining or None]
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.host = "127.0.0.1"
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "Simulator":
        if not _is_loopback(host):
            raise ValueError(f"the simulator only listens on loopback, not {host!r}")
        if host == "localhost":  # one address: "localhost" may bind ::1 and 127.0.0.1 on two ports
            host = "127.0.0.1"
        self._wake = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v5/market/time", self._h_time)
        app.router.add_get("/v5/account/query-dcp-info", self._h_dcp_info)
        app.router.add_post("/v5/order/disconnected-cancel-all", self._h_set_dcp)
        app.router.add_post("/v5/order/create", self._h_create)
        app.router.add_get("/v5/order/realtime", self._h_realtime)
        app.router.add_get("/v5/order/history", self._h_history)
        app.router.add_get("/v5/private", self._h_ws)
        app.router.add_get(CONTROL_PREFIX + "/state", self._h_state)
        app.router.add_post(CONTROL_PREFIX + "/{name}", self._h_control)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.host, self.port = host, sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_loop(), name="simulator-dcp-ticker")
        return self

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        # All connections at once under one bounded wait: a client that stopped reading must
        # not hold up the others, nor stop() for ever.
        closing = [asyncio.ensure_future(self._safe_close(c, 1001, "server shutting down")) for c in self._conns.values()]
        if closing:
            _, late = await asyncio.wait(closing, timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
            for conn in list(self._conns.values()):
                if conn.transport is not None:
                    conn.transport.abort()  # whatever it still had to send is dropped
        while self._tasks:  # handlers may have spawned more while the sockets closed
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "Simulator":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._authority}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._authority}/v5/private"

    @property
    def control_url(self) -> str:
        return self.rest_url + CONTROL_PREFIX

    # --- accounts ---------------------------------------------------------------------
    def add_account(
        self,
        api_key: str,
        api_secret: str | None = None,
        *,
        rsa_public_key_pem: str | None = None,
        name: str | None = None,
        dcp: dict[str, int] | None = None,
    ) -> SimAccount:
        if api_key in self._accounts:
            raise ValueError(f"account {api_key!r} already exists")
        if dcp is None:
            dcp = DEFAULT_DCP
        for product, window in dcp.items():
            if product not in PRODUCTS or not valid_window(window):
                raise ValueError(f"bad DCP setting {product}={window!r}: products {PRODUCTS}, windows 3..300")
        if rsa_public_key_pem is None and api_secret is None:
            api_secret = new_secret()
        acct = SimAccount(api_key, api_secret, rsa_public_key_pem, name or api_key, dict(dcp))
        self._accounts[api_key] = acct
        return acct

    def account(self, api_key: str) -> SimAccount:
        return self._accounts[api_key]

    def place_order(
        self, api_key: str, *, category: str, symbol: str = "BTCUSDT", side: str = "Buy", qty: str = "0.01", price: str = "10000"
    ) -> dict:
        """A resting limit order (status New), pushed to the account's order subscribers."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        order = self.account(api_key).new_order(
            time.time(), category=category, symbol=symbol, side=side, qty=str(qty), price=str(price)
        )
        self._push_orders(api_key, [order])
        return dict(order)

    def connections(self, api_key: str | None = None) -> list[str]:
        """Ids of live (authenticated, if api_key given) connections."""
        conns = self._conns.values() if api_key is None else self._conns_of(api_key)
        return [c.conn_id for c in conns]

    def _conns_of(self, api_key: str | None) -> list[_Conn]:
        """The live connections authenticated with ``api_key`` (None: not yet authenticated)."""
        return [c for c in self._conns.values() if c.api_key == api_key]

    # --- fault injection ----------------------------------------------------------------
    def set_pong_latency(self, api_key: str, seconds: float) -> None:
        self.account(api_key)
        if seconds and seconds > 0:
            self._pong_latency[api_key] = float(seconds)
        else:
            self._pong_latency.pop(api_key, None)

    def drop_pongs(self, api_key: str, drop: bool = True) -> None:
        self.account(api_key)
        (self._drop_pongs.add if drop else self._drop_pongs.discard)(api_key)

    def stall(self, api_key: str, stalled: bool = True) -> None:
        """The account's live connections go silent: frames from the client are neither
        answered nor count as heartbeats, and nothing is pushed. The sockets stay open.
        Connections opened later are not affected."""
        self.account(api_key)
        for conn in self._conns_of(api_key):
            conn.stalled = stalled

    def close_connections(self, api_key: str, code: int = 1000, reason: str = "") -> int:
        self.account(api_key)
        conns = self._conns_of(api_key)
        for conn in conns:
            self._spawn(self._safe_close(conn, code, reason))
        return len(conns)

    def force_error(self, path: str, ret_code: int, count: int | None = 1) -> None:
        """The next ``count`` requests to ``path`` fail with ``ret_code`` (None = until cleared).
        403 and 5xx are answered as HTTP statuses, anything else as a Bybit retCode."""
        self._forced[path] = [int(ret_code), count]

    def clear_errors(self) -> None:
        self._forced.clear()

    def send_malformed(self, api_key: str, text: str) -> int:
        self.account(api_key)
        conns = self._conns_of(api_key)
        for conn in conns:
            self._spawn(self._send_raw(conn, text))
        return len(conns)

    def set_dcp(self, api_key: str, product: str, window_or_None: int | None = None, **kw) -> None:
        """Change the account's DCP setting at once, behind any client's back; None = off."""
        window = kw.pop("window", window_or_None)
        if kw:
            raise TypeError(f"unexpected arguments {sorted(kw)}")
        if product not in PRODUCTS:
            raise ValueError(f"unknown product {product!r}")
        acct = self.account(api_key)
        acct.pending_dcp = [p for p in acct.pending_dcp if p[1] != product]
        if window is None:
            acct.dcp.pop(product, None)
        else:
            if not valid_window(window):
                raise ValueError("window must be an integer in [3, 300]")
            acct.dcp[product] = window

    def reset_faults(self) -> None:
        self._pong_latency.clear()
        self._drop_pongs.clear()
        self._forced.clear()
        for conn in self._conns.values():
            conn.stalled = False

    # --- introspection ------------------------------------------------------------------
    def dcp_timer(self, api_key: str, product: str) -> tuple[float, float] | None:
        """(started, deadline) in unix seconds of a running DCP timer, else None."""
        return self._engine.timer(api_key, product)

    def state(self) -> dict:
        now = time.time()
        accounts = []
        for acct in self._accounts.values():
            acct.apply_due_settings(now)
            accounts.append(
                {
                    "api_key": acct.api_key,
                    "name": acct.name,
                    "dcp": dict(acct.dcp),
                    "pending_dcp": [{"effective_at": t, "product": p, "window": w} for t, p, w in acct.pending_dcp],
                    "active_orders": len(acct.active_orders()),
                    "orders": len(acct.orders),
                    "triggers": list(acct.triggers),
                    "set_dcp_calls": [list(c) for c in acct.set_dcp_calls],
                    "subscribed_topics": sorted(acct.subscribed_topics()),
                    "connections": [
                        {"conn_id": c.conn_id, "topics": sorted(c.topics), "stalled": c.stalled}
                        for c in self._conns_of(acct.api_key)
                    ],
                    "timers": {
                        p: {"started": t[0], "deadline": t[1]}
                        for p in PRODUCTS
                        if (t := self._engine.timer(acct.api_key, p)) is not None
                    },
                    "faults": {
                        "pong_latency": self._pong_latency.get(acct.api_key, 0.0),
                        "drop_pongs": acct.api_key in self._drop_pongs,
                    },
                }
            )
        return {
            "time": now,
            "time_scale": self.time_scale,
            "settle_delay": self.settle_delay,
            "idle_cutoff": self.idle_cutoff,
            "accounts": accounts,
            "forced_errors": {p: {"ret_code": c, "count": n} for p, (c, n) in self._forced.items()},
            "unauthenticated_connections": len(self._conns_of(None)),
        }

    # --- DCP engine driving -------------------------------------------------------------
    def _window_of(self, api_key: str, product: str, now: float) -> float | None:
        acct = self._accounts.get(api_key)
        if acct is None:
            return None
        acct.apply_due_settings(now)
        window = acct.dcp.get(product)
        return None if window is None else window * self.time_scale

    async def _tick_loop(self) -> None:
        while True:
            try:
                self._tick()
            except Exception:  # a bug here must not stop DCP for every account
                log.exception("simulator: DCP tick failed")
            deadlines = [d for d in [self._engine.next_deadline()] if d is not None]
            deadlines += [p[0] for a in self._accounts.values() for p in a.pending_dcp]
            wait = min([d - time.time() for d in deadlines] + [1.0])
            self._wake.clear()
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancel that arrives as
            # the event is set, and stop() would wait for this loop forever.
            try:
                async with asyncio.timeout(max(wait, 0.001)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _tick(self) -> None:
        """Expire idle connections, fire due DCP timers, apply settled windows."""
        now = time.time()
        dead, fired = self._engine.tick(now)
        for conn_id in dead:
            conn = self._conns.get(conn_id)
            if conn is not None:
                self._spawn(self._safe_close(conn, 1000, "max_active_time exceeded"))
        for trig in fired:
            self._fire(trig, now)
        for acct in self._accounts.values():
            acct.apply_due_settings(now)

    def _poke(self) -> None:
        self._wake.set()

    def _fire(self, trig: Trigger, now: float) -> None:
        acct = self._accounts.get(trig.account)
        if acct is None:
            return
        cancelled = acct.cancel_by_dcp(PRODUCT_CATEGORIES[trig.product], now)
        acct.triggers.append({"product": trig.product, "time": now, "order_ids": [o["orderId"] for o in cancelled]})
        log.info("DCP triggered: account=%s product=%s cancelled=%d", acct.name, trig.product, len(cancelled))
        if cancelled:
            self._push_orders(trig.account, cancelled)

    def _push_orders(self, api_key: str, orders: list[dict]) -> None:
        for conn in self._conns_of(api_key):
            if conn.stalled:
                continue
            for topic in conn.topics:
                if topic not in frames.ORDER_TOPICS:
                    continue
                wanted = [o for o in orders if frames.topic_wants(topic, o["category"])]
                if wanted:
                    self._spawn(self._send(conn, frames.order_push(topic, wanted)))

    # --- websocket ----------------------------------------------------------------------
    async def _h_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0, autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        max_active = frames.parse_max_active_time(request.query.get("max_active_time"))
        cutoff = self.idle_cutoff if self.idle_cutoff is not None else (max_active or frames.DEFAULT_MAX_ACTIVE)
        conn = _Conn(frames.new_conn_id(), ws, cutoff, transport=request.transport)
        self._conns[conn.conn_id] = conn
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._on_text(conn, msg.data)
        except ConnectionError:
            pass
        finally:
            self._conns.pop(conn.conn_id, None)
            self._engine.close(conn.conn_id, time.time())
            self._poke()
        return ws

    async def _on_text(self, conn: _Conn, text: str) -> None:
        now = time.time()
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if conn.api_key is not None and isinstance(frame, dict):
            self._accounts[conn.api_key].ws_frames.append((conn.conn_id, frame))
        if conn.stalled:
            return  # a black hole: not answered, not a heartbeat
        self._engine.activity(conn.conn_id, now)
        if not isinstance(frame, dict):
            return
        op, req_id = frame.get("op"), frame.get("req_id")
        if op == "ping":
            self._engine.ping(conn.conn_id, now)  # deadlines only move later: no need to wake the ticker
            await self._pong(conn, req_id)
        elif op == "auth":
            await self._auth(conn, frame, now)
        elif op == "subscribe":
            await self._subscribe(conn, frame, now)
        elif op == "unsubscribe":
            await self._unsubscribe(conn, frame, now)
        else:
            await self._send(conn, frames.op_result(str(op), conn.conn_id, req_id, ok=False, message=f"error:unknown op {op}"))

    async def _pong(self, conn: _Conn, req_id) -> None:
        key = conn.api_key
        if key is not None and key in self._drop_pongs:
            return
        delay = self._pong_latency.get(key, 0.0) if key is not None else 0.0
        if delay > 0:
            self._spawn(self._delayed_pong(conn, req_id, delay))
        else:
            await self._send(conn, frames.pong(conn.conn_id, time.time(), req_id))

    async def _delayed_pong(self, conn: _Conn, req_id, delay: float) -> None:
        await asyncio.sleep(delay)
        if not conn.stalled:
            await self._send(conn, frames.pong(conn.conn_id, time.time(), req_id))

    async def _auth(self, conn: _Conn, frame: dict, now: float) -> None:
        req_id = frame.get("req_id")
        error = self._auth_error(conn, frame.get("args"), now)
        if error is not None:
            await self._send(conn, frames.op_result("auth", conn.conn_id, req_id, ok=False, message=error))
            return
        api_key = frame["args"][0]
        conn.api_key = api_key
        self._accounts[api_key].ws_frames.append((conn.conn_id, frame))
        self._engine.open(conn.conn_id, api_key, now, conn.idle_cutoff)
        self._poke()
        await self._send(conn, frames.op_result("auth", conn.conn_id, req_id))

    def _auth_error(self, conn: _Conn, args, now: float) -> str | None:
        """Bybit's message for a refused ``auth`` (args ``[api_key, expires_ms, signature]``), or None."""
        if conn.api_key is not None:
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
        acct = self._accounts.get(api_key)
        if acct is None or not R.verify(acct, signing.ws_auth_payload(expires_ms), signature):
            return "Request not authorized"
        return None

    async def _subscribe(self, conn: _Conn, frame: dict, now: float) -> None:
        req_id, args = frame.get("req_id"), frame.get("args")
        if conn.api_key is None:
            await self._send(conn, frames.op_result("subscribe", conn.conn_id, req_id, ok=False, message="Request not authorized"))
            return
        error = frames.check_topics(args, conn.topics)
        if error is not None:
            await self._send(conn, frames.op_result("subscribe", conn.conn_id, req_id, ok=False, message=error))
            return
        acct = self._accounts[conn.api_key]
        for topic in args:
            conn.topics.add(topic)
            acct.note_topic(topic)
            if topic in TOPIC_PRODUCT:
                self._engine.subscribe(conn.conn_id, TOPIC_PRODUCT[topic], now)
        await self._send(conn, frames.op_result("subscribe", conn.conn_id, req_id))

    async def _unsubscribe(self, conn: _Conn, frame: dict, now: float) -> None:
        req_id, args = frame.get("req_id"), frame.get("args")
        if conn.api_key is None or not isinstance(args, list):
            await self._send(conn, frames.op_result("unsubscribe", conn.conn_id, req_id, ok=False, message="Params Error"))
            return
        for topic in args:
            if not isinstance(topic, str) or topic not in conn.topics:
                continue
            conn.topics.discard(topic)
            if topic in TOPIC_PRODUCT:  # no longer a protected connection of that product
                self._engine.unsubscribe(conn.conn_id, TOPIC_PRODUCT[topic], now)
                self._poke()
        await self._send(conn, frames.op_result("unsubscribe", conn.conn_id, req_id))

    async def _send(self, conn: _Conn, frame: dict) -> None:
        await self._send_raw(conn, json.dumps(frame, separators=(",", ":")))

    async def _send_raw(self, conn: _Conn, text: str) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass

    async def _safe_close(self, conn: _Conn, code: int, reason: str) -> None:
        try:
            await conn.ws.close(code=code, message=reason.encode())
        except (ConnectionError, RuntimeError):
            pass

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- REST -----------------------------------------------------------------------------
    def _json(self, body: dict, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
        return web.Response(
            text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json", headers=headers
        )

    def _forced_for(self, path: str) -> int | None:
        entry = self._forced.get(path)
        if entry is None:
            return None
        code, remaining = entry
        if remaining is not None:
            remaining -= 1
            if remaining <= 0:
                del self._forced[path]
            else:
                entry[1] = remaining
        return code

    def _forced_response(self, code: int, headers: dict[str, str] | None = None) -> web.Response:
        if code == 403 or 500 <= code < 600:
            return web.Response(text=f"{code} forced by simulator", status=code, headers=headers)
        return self._json(R.error_body(ApiError(code)), headers)

    async def _h_time(self, request: web.Request) -> web.Response:
        forced = self._forced_for(request.path)
        if forced is not None:
            return self._forced_response(forced)
        now = time.time()
        return self._json(R.envelope(R.server_time_result(now), now=now))

    async def _signed(self, request: web.Request, handler) -> web.Response:
        """Authenticate, rate-limit, apply forced errors, then run ``handler(acct, params, body, now)``."""
        now = time.time()
        path = request.path
        params = dict(request.query)
        raw = await request.text() if request.method == "POST" else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        api_key = request.headers.get("X-BAPI-API-KEY", "")
        acct = self._accounts.get(api_key)
        if acct is None:
            return self._json(R.error_body(ApiError(10003)))
        record = {"method": request.method, "path": path, "params": params, "body": body, "ret_code": None}
        acct.rest_calls.append(record)
        headers = None
        try:
            ts, recv = R.check_timestamp(request.headers.get("X-BAPI-TIMESTAMP"), request.headers.get("X-BAPI-RECV-WINDOW"), now)
            payload = request.query_string if request.method == "GET" else raw
            R.check_signature(acct, ts, recv, payload, request.headers.get("X-BAPI-SIGN"))
            limit = self._limiter.hit(api_key, path, now)
            headers = limit.headers()
            if not limit.allowed:
                raise ApiError(10006)
            forced = self._forced_for(path)
            if forced is not None:
                record["ret_code"] = forced
                if forced == 10006:
                    headers["X-Bapi-Limit-Status"] = "0"
                return self._forced_response(forced, headers)
            if request.method == "POST" and raw and body is None:
                raise ApiError(10001, "params error: body is not valid JSON")
            result = handler(acct, params, body, now)
        except ApiError as err:
            record["ret_code"] = err.code
            return self._json(R.error_body(err, now), headers)
        record["ret_code"] = result.get("retCode", 0)
        return self._json(result, headers)

    async def _h_dcp_info(self, request: web.Request) -> web.Response:
        def handler(acct: SimAccount, params, body, now):
            return R.envelope({"dcpInfos": acct.dcp_infos(now)}, msg="success", now=now)

        return await self._signed(request, handler)

    async def _h_set_dcp(self, request: web.Request) -> web.Response:
        def handler(acct: SimAccount, params, body, now):
            product, window = R.parse_set_dcp(body if body is not None else {})
            acct.apply_due_settings(now)
            if product not in acct.dcp:  # a pending window implies the product is enabled
                raise ApiError(10001, f"DCP is not enabled for product {product}; contact your account manager")
            acct.request_window(product, window, now, self.settle_delay * self.time_scale)
            self._poke()
            return R.envelope(msg="success", now=now, with_result=False)

        return await self._signed(request, handler)

    async def _h_create(self, request: web.Request) -> web.Response:
        def handler(acct: SimAccount, params, body, now):
            spec = R.parse_create(body)
            order = acct.new_order(
                now,
                category=spec["category"],
                symbol=spec["symbol"],
                side=spec["side"],
                qty=spec["qty"],
                price=spec["price"],
                order_type=spec["order_type"],
                order_link_id=spec["order_link_id"],
                time_in_force=spec["time_in_force"],
            )
            if spec["order_type"] == "Market":  # fills at once; only limit orders rest
                order.update(orderStatus="Filled", leavesQty="0", leavesValue="0", cumExecQty=order["qty"])
            self._push_orders(acct.api_key, [order])
            return R.envelope({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}, now=now)

        return await self._signed(request, handler)

    async def _h_realtime(self, request: web.Request) -> web.Response:
        def handler(acct: SimAccount, params, body, now):
            return R.envelope(R.open_orders(acct, params), now=now)

        return await self._signed(request, handler)

    async def _h_history(self, request: web.Request) -> web.Response:
        def handler(acct: SimAccount, params, body, now):
            return R.envelope(R.order_history(acct, params, now), now=now)

        return await self._signed(request, handler)

    # --- control surface ------------------------------------------------------------------
    async def _h_state(self, request: web.Request) -> web.Response:
        return self._json(self.state())

    async def _h_control(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in CONTROL_METHODS:
            return self._json({"ok": False, "error": f"unknown control {name!r}", "controls": list(CONTROL_METHODS)}, status=404)
        try:
            raw = await request.text()
            kwargs = json.loads(raw) if raw.strip() else {}
            if not isinstance(kwargs, dict):
                raise ValueError("the body must be a JSON object of keyword arguments")
            result = getattr(self, name)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return self._json({"ok": False, "error": str(exc)}, status=400)
        return self._json({"ok": True, "result": result})
