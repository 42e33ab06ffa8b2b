"""The :class:`Simulator` façade: one aiohttp application on loopback serving Bybit V5 REST
(:mod:`.routes`), the private websocket ``/v5/private`` (:mod:`.session`) and the control
surface ``/__sim__`` (:mod:`.control`), plus the Python API tests use to set up accounts,
inject faults and read what happened.

Decisions live in the pure modules (:mod:`.engine`, :mod:`.rest`, :mod:`.frames`,
:mod:`.ratelimit`, :mod:`.accounts`, :mod:`.faults`); the shared state in :mod:`.core`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import ssl
from dataclasses import dataclass

from aiohttp import web

from .accounts import DEFAULT_DCP, SimAccount, masked_key, ms, new_order_id
from .clock import Clock, SystemClock
from .control import CONTROL_PREFIX, ControlSurface
from .core import SimCore
from .engine import CATEGORIES, PRODUCTS, valid_window
from .faults import ForcedResponse
from .ratelimit import RateLimiter
from .rest import HISTORY_FILTERS
from .routes import DCP_PATHS, RestRoutes
from .session import ServerStream
from .signatures import new_api_secret

# Seconds stop() gives the clients to answer the close handshake. A bound on real sockets,
# so it is event-loop time, not the simulator's clock.
CLOSE_WAIT = 2.0
SHUTDOWN_TIMEOUT = 2.0


def server_tls(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """The context for :meth:`Simulator.start`'s ``tls``: serve ``https://`` and ``wss://`` with this PEM pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address: the only places the simulator listens."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConnectionInfo:
    """A live private-websocket connection, as :meth:`Simulator.connection_info` shows it."""

    conn_id: str
    api_key: str | None  # None until it authenticates
    topics: frozenset[str]
    idle_cutoff: float  # seconds of client silence after which it counts as dead
    stalled: bool
    write_buffer_bytes: int  # sent by the server, not yet taken by the client's socket


class Simulator:
    """A fake Bybit V5 on loopback. See docs/simulator.md.

    ``clock`` (default: the real time) is where every timestamp and every simulated wait
    comes from; ``rng`` (default: seeded by the system) draws connection, push and order ids.
    """

    def __init__(
        self,
        time_scale: float = 1.0,
        settle_delay: float = 0.0,
        idle_cutoff: float | None = None,
        rate_limit_per_second: int = 5,
        other_rate_limit_per_second: int | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if other_rate_limit_per_second is None:  # raising the DCP limit raises the others too
            other_rate_limit_per_second = max(20, rate_limit_per_second)
        self._core = SimCore(
            clock=clock if clock is not None else SystemClock(),
            rng=rng if rng is not None else random.Random(),
            limiter=RateLimiter({p: rate_limit_per_second for p in DCP_PATHS}, other_rate_limit_per_second),
            time_scale=time_scale,
            settle_delay=settle_delay,
            idle_cutoff=idle_cutoff,
        )
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.secure = False  # serving https:// and wss://

    @property
    def clock(self) -> Clock:
        return self._core.clock

    @property
    def time_scale(self) -> float:
        return self._core.time_scale

    @property
    def settle_delay(self) -> float:
        return self._core.settle_delay

    @property
    def idle_cutoff(self) -> float | None:
        return self._core.idle_cutoff

    def set_history(self, *, filter_by: str | None = None, delay: float | None = None) -> None:
        """Order history's reading of startTime/endTime (``updatedTime`` or ``createdTime``: Bybit
        does not say which) and the seconds before a change shows in it (Bybit: "may delay")."""
        if filter_by is not None:
            if filter_by not in HISTORY_FILTERS:
                raise ValueError(f"history filter must be one of {HISTORY_FILTERS}, not {filter_by!r}")
            self._core.history_filter = filter_by
        if delay is not None:
            self._core.history_delay = max(0.0, float(delay))

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> Simulator:
        """Listen on loopback; with ``tls`` (a server context) as ``https://`` and ``wss://``, as Bybit does."""
        if not is_loopback(host):
            raise ValueError(f"the simulator only listens on loopback, not {host!r}")
        if host == "localhost":  # one address: "localhost" may bind ::1 and 127.0.0.1 on two ports
            host = "127.0.0.1"
        app = web.Application()
        RestRoutes(self._core).add_to(app.router)
        app.router.add_get("/v5/private", ServerStream(self._core).handle)
        ControlSurface(self).add_to(app.router)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=tls).start()
        self.host, self.port = host, self._runner.addresses[0][1]
        self.secure = tls is not None
        self._ticker = asyncio.create_task(self._core.run_ticker(), name="simulator-dcp-ticker")
        return self

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        # All connections at once under one bounded wait: a client that stopped reading must
        # not hold up the others, nor stop() for ever.
        sessions = list(self._core.sessions.values())
        closing = [asyncio.ensure_future(s.close(1001, "server shutting down")) for s in sessions]
        if closing:
            _, late = await asyncio.wait(closing, timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
            for session in list(self._core.sessions.values()):
                session.abort()
        await self._core.cancel_tasks()  # handlers may have spawned more while the sockets closed
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self._authority}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self._authority}/v5/private"

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
        read_only: int | None = None,
        permissions: dict[str, list[str]] | None = None,
        ips: list[str] | None = None,
        expired_at: str | None = None,
        unified_margin_status: int | None = None,
    ) -> SimAccount:
        if api_key in self._core.accounts:
            raise ValueError(f"account {masked_key(api_key)} already exists")
        if dcp is None:
            dcp = DEFAULT_DCP
        for product, window in dcp.items():
            if product not in PRODUCTS or not valid_window(window):
                raise ValueError(f"bad DCP setting {product}={window!r}: products {PRODUCTS}, windows 3..300")
        if rsa_public_key_pem is None and api_secret is None:
            api_secret = new_api_secret()
        acct = SimAccount(api_key, api_secret, rsa_public_key_pem, name or api_key, dict(dcp))
        self._core.accounts[api_key] = acct
        self.set_key(api_key, read_only=read_only, permissions=permissions, ips=ips, expired_at=expired_at)
        if unified_margin_status is not None:
            self.set_account_mode(api_key, unified_margin_status)
        return acct

    def account(self, api_key: str) -> SimAccount:
        return self._core.accounts[api_key]

    def place_order(
        self,
        api_key: str,
        *,
        category: str,
        symbol: str = "BTCUSDT",
        side: str = "Buy",
        qty: str = "0.01",
        price: str = "10000",
        age: float = 0.0,
    ) -> dict:
        """A resting limit order (status New), pushed to the account's order subscribers;
        ``age`` seconds old (created and last updated that long ago: an order resting for days)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        order = self.account(api_key).new_order(
            self._core.clock.time() - age,
            order_id=new_order_id(self._core.rng),
            category=category,
            symbol=symbol,
            side=side,
            qty=str(qty),
            price=str(price),
        )
        self._core.push_orders(api_key, [order])
        return dict(order)

    def fill_order(self, api_key: str, order_id: str) -> dict:
        """A resting order trades in full (a counterparty took it), pushed like any other update."""
        order = self.account(api_key).orders[order_id]
        order.update(orderStatus="Filled", leavesQty="0", leavesValue="0", cumExecQty=order["qty"])
        order["updatedTime"] = ms(self._core.clock.time())
        self._core.push_orders(api_key, [order])
        return dict(order)

    # --- fault injection ----------------------------------------------------------------
    def set_pong_latency(self, api_key: str, seconds: float) -> None:
        self.account(api_key)
        self._core.faults.set_pong_latency(api_key, seconds)

    def forge_pong_clock(self, api_key: str, seconds: float) -> None:
        """The account's pongs report the simulator's clock plus ``seconds`` in ``args[0]``
        (a forged or broken pong); 0 puts it back."""
        self.account(api_key)
        self._core.faults.set_pong_clock_offset(api_key, seconds)

    def drop_pongs(self, api_key: str, drop: bool = True) -> None:
        self.account(api_key)
        self._core.faults.drop_pongs(api_key, drop)

    def stall(self, api_key: str, stalled: bool = True) -> None:
        """The account's live connections go silent: frames from the client are neither
        answered nor count as heartbeats, and nothing is pushed. The sockets stay open.
        Connections opened later are not affected."""
        self.account(api_key)
        for session in self._core.sessions_of(api_key):
            session.stalled = stalled

    def close_connections(self, api_key: str, code: int = 1000, reason: str = "") -> int:
        self.account(api_key)
        sessions = self._core.sessions_of(api_key)
        for session in sessions:
            self._core.spawn(session.close(code, reason))
        return len(sessions)

    def abort_connections(self, api_key: str) -> int:
        """Drop the account's connections at the TCP level, with no close frame: the client
        sees an abnormal closure (1006). Returns how many were dropped."""
        self.account(api_key)
        sessions = self._core.sessions_of(api_key)
        for session in sessions:
            session.abort()
        return len(sessions)

    def refuse_subscribe(self, api_key: str, on: bool = True) -> None:
        """Every later ``subscribe`` of the account is answered ``success: false`` (auth still
        works; topics already held stay held) until ``on=False``."""
        self.account(api_key)
        self._core.faults.refuse_subscribes(api_key, on)

    def refuse_streams(self, api_key: str, refused: bool = True) -> int:
        """The account's private stream is down while REST works: its live connections are
        closed and every new auth is refused ("Request not authorized"). Returns how many closed."""
        self.account(api_key)
        self._core.faults.refuse_streams(api_key, refused)
        return self.close_connections(api_key, 1000, "refused") if refused else 0

    def streams_unreachable(self, unreachable: bool = True) -> int:
        """The private stream's host is unreachable for every account while REST works: live
        connections are dropped without a close frame and every new handshake is answered 503,
        until ``unreachable=False``. Returns how many were dropped."""
        self._core.faults.streams_unreachable = unreachable
        if not unreachable:
            return 0
        sessions = list(self._core.sessions.values())
        for session in sessions:
            session.abort()
        return len(sessions)

    def set_rate_limit(self, path: str, per_second: int) -> None:
        """Each key may call ``path`` ``per_second`` times a second from now on (Bybit can lower an
        account's limits, and other clients of the key share them): the headroom the headers show."""
        if not (isinstance(per_second, int) and per_second >= 1):
            raise ValueError("per_second must be a positive integer")
        self._core.limiter.limits[path] = per_second

    def force_error(self, path: str, ret_code: int, count: int | None = 1) -> None:
        """The next ``count`` requests to ``path`` fail with ``ret_code`` (None = until cleared).
        403 and 5xx are answered as HTTP statuses, anything else as a Bybit retCode."""
        self._core.faults.force_error(path, ret_code, count)

    def force_response(
        self,
        path: str,
        status: int = 200,
        body: str = "",
        headers: dict[str, str] | None = None,
        count: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """The next ``count`` requests to ``path`` get this raw answer after ``delay`` seconds,
        before any check (None = until cleared): hostile bodies, headers, redirects, hangs."""
        self._core.faults.force_response(
            path, ForcedResponse(int(status), str(body), dict(headers or {}), delay, count)
        )

    def clear_errors(self) -> None:
        """Remove every forced error and forced answer."""
        self._core.faults.clear_errors()

    def send_malformed(self, api_key: str, text: str) -> int:
        self.account(api_key)
        sessions = self._core.sessions_of(api_key)
        for session in sessions:
            self._core.spawn(session.send_text(text))
        return len(sessions)

    def set_dcp(self, api_key: str, product: str, window_or_None: int | None = None, **kw: int | None) -> None:
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

    def set_key(
        self,
        api_key: str,
        *,
        read_only: int | None = None,
        permissions: dict[str, list[str]] | None = None,
        ips: list[str] | None = None,
        expired_at: str | None = None,
    ) -> None:
        """What ``GET /v5/user/query-api`` reports for the key (None leaves a field as it is):
        ``read_only`` 1 refuses every POST with 10005; ``ips`` without ``*`` refuses calls from
        other addresses with 10010; ``expired_at`` is an ISO time (``""``: none reported)."""
        acct = self.account(api_key)
        if read_only is not None:
            if read_only not in (0, 1) or isinstance(read_only, bool):
                raise ValueError("read_only must be 0 (read and write) or 1 (read only)")
            acct.read_only = read_only
        if permissions is not None:
            if not isinstance(permissions, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in permissions.values()
            ):
                raise ValueError("permissions must map a group to a list of names, as Bybit's do")
            acct.permissions = {str(k): list(v) for k, v in permissions.items()}
        if ips is not None:
            if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
                raise ValueError("ips must be a list of addresses (['*'] = any)")
            acct.ips = list(ips)
        if expired_at is not None:
            if not isinstance(expired_at, str):
                raise ValueError("expired_at must be an ISO time such as 2027-01-31T00:00:00Z, or ''")
            acct.expired_at = expired_at

    def set_account_mode(self, api_key: str, unified_margin_status: int) -> None:
        """The ``unifiedMarginStatus`` ``GET /v5/account/info`` reports (1 classic, 3/4 UTA 1.0, 5/6 UTA 2.0)."""
        if isinstance(unified_margin_status, bool) or not isinstance(unified_margin_status, int):
            raise ValueError("unified_margin_status must be an integer")
        self.account(api_key).unified_margin_status = unified_margin_status

    def reset_faults(self) -> None:
        self._core.faults.reset()
        for session in self._core.sessions.values():
            session.stalled = False

    # --- reading what happened ------------------------------------------------------------
    def connections(self, api_key: str | None = None) -> list[str]:
        """Ids of live (authenticated, if api_key given) connections."""
        sessions = self._core.sessions.values() if api_key is None else self._core.sessions_of(api_key)
        return [s.conn_id for s in sessions]

    def connection_info(self) -> list[ConnectionInfo]:
        """Every live private-websocket connection, authenticated or not, oldest first."""
        return [
            ConnectionInfo(
                conn_id=s.conn_id,
                api_key=s.api_key,
                topics=frozenset(s.topics),
                idle_cutoff=s.idle_cutoff,
                stalled=s.stalled,
                write_buffer_bytes=s.write_buffer_bytes(),
            )
            for s in self._core.sessions.values()
        ]

    def listening_addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the simulator listens on; empty when it is stopped."""
        return [tuple(a[:2]) for a in self._runner.addresses] if self._runner else []

    def background_tasks(self) -> int:
        """Pushes, late pongs and closes still in flight; stop() leaves none."""
        return len(self._core.tasks)

    def dcp_timer(self, api_key: str, product: str) -> tuple[float, float] | None:
        """(started, deadline) in unix seconds of a running DCP timer, else None."""
        return self._core.engine.timer(api_key, product)

    def state(self) -> dict:
        core = self._core
        now = core.clock.time()
        accounts = []
        for acct in core.accounts.values():
            acct.apply_due_settings(now)
            accounts.append(
                {
                    "api_key": masked_key(acct.api_key),
                    "name": acct.name,
                    "dcp": dict(acct.dcp),
                    "pending_dcp": [{"effective_at": t, "product": p, "window": w} for t, p, w in acct.pending_dcp],
                    "key": {
                        "read_only": acct.read_only,
                        "permissions": acct.permissions,
                        "ips": list(acct.ips),
                        "expired_at": acct.expired_at,
                    },
                    "unified_margin_status": acct.unified_margin_status,
                    "active_orders": len(acct.active_orders()),
                    "orders": len(acct.orders),
                    "triggers": list(acct.triggers),
                    "set_dcp_calls": [list(c) for c in acct.set_dcp_calls],
                    "subscribed_topics": sorted(acct.subscribed_topics()),
                    "connections": [
                        {"conn_id": s.conn_id, "topics": sorted(s.topics), "stalled": s.stalled}
                        for s in core.sessions_of(acct.api_key)
                    ],
                    "timers": {
                        p: {"started": t[0], "deadline": t[1]}
                        for p in PRODUCTS
                        if (t := core.engine.timer(acct.api_key, p)) is not None
                    },
                    "faults": {
                        "pong_latency": core.faults.pong_latency.get(acct.api_key, 0.0),
                        "drop_pongs": acct.api_key in core.faults.dropped_pongs,
                        "refuse_streams": acct.api_key in core.faults.refused_streams,
                        "refuse_subscribe": acct.api_key in core.faults.refused_subscribes,
                    },
                }
            )
        return {
            "time": now,
            "time_scale": core.time_scale,
            "settle_delay": core.settle_delay,
            "idle_cutoff": core.idle_cutoff,
            "accounts": accounts,
            "forced_errors": {
                path: {"ret_code": f.ret_code, "count": f.remaining} for path, f in core.faults.forced_errors.items()
            },
            "unauthenticated_connections": len(core.sessions_of(None)),
        }
