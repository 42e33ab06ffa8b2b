"""Bybit V5 REST client (aiohttp): the four calls the exporter needs, signed and counted.

One ``aiohttp.ClientSession`` serves the whole process; each account gets its own
:class:`RestClient`. Every call is counted under a short endpoint label; every
response's top-level ``time`` updates the clock-skew gauge. A call's duration runs from the
moment it has its connection to the end of the body: with the fleet's session the trace hooks
of :mod:`.wire` note that moment, and the wait for a pool slot is a metric of its own; with a
session without them (a test's) it runs from the start of the call. Errors are the typed
errors of :mod:`exporter.bybit.errors`, never carrying credentials.

Whatever comes back is checked once, at this edge, by :mod:`.models` and :mod:`.sanity`:
a success without a usable result is the error ``invalid``, a number out of its range is
counted in ``bybit_dcp_invalid_values_total`` and left unused, and a redirect is the error
``redirect`` (never followed: the signed headers would go to another host). The query
string is built once, signed, and sent byte for byte as signed.
"""

from __future__ import annotations

import functools
import json
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from ..clock import SYSTEM_CLOCK, Clock
from ..metrics import Metrics
from ..secrets import Secret
from .errors import RateLimited, TimestampError, TransportError, code_label, error_for
from .models import (
    DcpSetting,
    Envelope,
    OrderPage,
    parse_dcp_info,
    parse_envelope,
    parse_order_page,
    parse_server_time,
    set_dcp_request,
)
from .pacing import HostBans
from .sanity import header_count, load_json, rate_limit_reset
from .signing import DEFAULT_RECV_WINDOW_MS, sign_rest
from .wire import RequestTiming

log = logging.getLogger(__name__)

SERVER_TIME = "/v5/market/time"
QUERY_DCP_INFO = "/v5/account/query-dcp-info"
ORDER_HISTORY = "/v5/order/history"
# The drill's calls: one canary order, the book it must be alone on, the price it keeps away from.
ORDER_CREATE = "/v5/order/create"
ORDER_CANCEL = "/v5/order/cancel"
OPEN_ORDERS = "/v5/order/realtime"
TICKERS = "/v5/market/tickers"

# Without a reset header, 10006 is a per-second limit.
RATE_LIMIT_FALLBACK_SECONDS = 1.0


@functools.lru_cache(maxsize=64)
def proxy_for(base_url: str) -> str | None:
    """The HTTP(S) proxy for REST calls to ``base_url``, from ``HTTPS_PROXY`` / ``HTTP_PROXY`` and
    ``NO_PROXY`` as for the private stream, worked out once per URL (the environment can hold
    a thousand ``api_secret_env`` variables). aiohttp speaks to ``http://`` and ``https://``
    proxies only; any other (``socks5://``) is left out and the call goes direct."""
    parts = urlsplit(base_url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.netloc):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme.lower())
    return proxy if proxy is not None and urlsplit(proxy).scheme.lower() in ("http", "https") else None


class RestClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account: str,
        environment: str,
        base_url: str,
        api_key: str,
        api_secret: Secret,
        metrics: Metrics,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        host_bans: HostBans | None = None,
    ) -> None:
        self._session = session
        self.account = account
        self.environment = environment  # the REST latency is labelled by it, not by the account
        self._base_url = base_url.rstrip("/")
        self._host = urlsplit(self._base_url).netloc or self._base_url
        # A 403 bans this IP for every client: the fleet passes one record to all of them.
        self._host_bans = host_bans if host_bans is not None else HostBans()
        self._api_key = api_key
        self._secret = api_secret if isinstance(api_secret, Secret) else Secret(api_secret)
        self._metrics = metrics
        self._recv_window_ms = recv_window_ms
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._proxy = proxy_for(self._base_url)
        self._clock = clock
        # Added to the local clock when signing; set by a resync after 10002.
        self.time_offset = 0.0
        self._blocked_until: dict[str, float] = {}

    # ------------------------------------------------------------------ public calls

    async def server_time(self) -> float:
        """Bybit's time in unix seconds (unsigned); also refreshes the clock-skew estimate."""
        body = await self._call("server_time", "GET", SERVER_TIME, signed=False)
        envelope = parse_envelope(body)  # _call checked it
        try:
            return parse_server_time(envelope.result)
        except ValueError as exc:
            if envelope.time is not None:
                return envelope.time
            self._invalid("server_time", exc)

    async def query_dcp_info(self) -> dict[str, DcpSetting]:
        body = await self._call("query_dcp_info", "GET", QUERY_DCP_INFO)
        try:
            return parse_dcp_info(body.get("result"))
        except ValueError as exc:
            self._invalid("query_dcp_info", exc)

    async def set_dcp(self, product: str, window: int) -> None:
        """Set the DCP window; ``product`` is always sent (Bybit would default to OPTIONS)."""
        method, path, body = set_dcp_request(product, window)
        await self._call("set_dcp", method, path, body=body)

    async def order_history(
        self, category: str, start_ms: int, end_ms: int, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[dict], str | None]:
        """One page of order history; returns the orders and the next cursor (None at the end)."""
        params: dict[str, Any] = {
            "category": category,
            "startTime": int(start_ms),
            "endTime": int(end_ms),
            "limit": max(1, min(50, int(limit))),
        }
        if cursor:
            params["cursor"] = cursor
        body = await self._call("order_history", "GET", ORDER_HISTORY, params=params)
        try:
            page: OrderPage = parse_order_page(body.get("result"), category)
        except ValueError as exc:
            self._invalid("order_history", exc)
        return page.orders, page.next_cursor

    async def last_price(self, category: str, symbol: str) -> str:
        """The symbol's last traded price, as Bybit writes it (unsigned market data)."""
        body = await self._call(
            "tickers", "GET", TICKERS, params={"category": category, "symbol": symbol}, signed=False
        )
        tickers = (body.get("result") or {}).get("list") or []
        price = tickers[0].get("lastPrice") if tickers and isinstance(tickers[0], dict) else None
        if not price:
            self._count_error("tickers", "network")
            raise TransportError("network", f"no last price for {symbol}", "tickers")
        return str(price)

    async def create_order(self, order: Mapping[str, str]) -> str:
        """Place an order (``order`` is Bybit's request body); returns its ``orderId``."""
        body = await self._call("create_order", "POST", ORDER_CREATE, body=json.dumps(dict(order)))
        order_id = (body.get("result") or {}).get("orderId")
        if not order_id:
            self._count_error("create_order", "network")
            raise TransportError("network", "order create answer without an orderId", "create_order")
        return str(order_id)

    async def cancel_order(self, category: str, order_id: str) -> None:
        await self._call(
            "cancel_order", "POST", ORDER_CANCEL, body=json.dumps({"category": category, "orderId": order_id})
        )

    async def open_orders(
        self, category: str, cursor: str | None = None, settle_coin: str | None = None, *, closed: bool = False
    ) -> tuple[list[dict], str | None]:
        """One page of the account's active orders of ``category`` (linear ones per settle coin, as
        Bybit asks), or with ``closed`` its up to 500 latest closed ones (``openOnly=1``); the
        orders and the next cursor."""
        params: dict[str, Any] = {"category": category, "limit": 50}
        if closed:
            params["openOnly"] = 1
        if settle_coin:
            params["settleCoin"] = settle_coin
        if cursor:
            params["cursor"] = cursor
        body = await self._call("open_orders", "GET", OPEN_ORDERS, params=params)
        result = body.get("result") or {}
        orders = result.get("list") or []
        if not isinstance(orders, list):
            self._count_error("open_orders", "network")
            raise TransportError("network", "open orders without a list", "open_orders")
        return [o for o in orders if isinstance(o, dict)], result.get("nextPageCursor") or None

    # ------------------------------------------------------------------ machinery

    def blocked_until(self, endpoint: str) -> float | None:
        """The end of a rate limit on ``endpoint`` (an IP ban is kept in ``host_bans``), or None."""
        until = self._blocked_until.get(endpoint)
        return until if until is not None and until > self._clock.time() else None

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: str | None = None,
        signed: bool = True,
    ) -> dict:
        """``body`` is the exact JSON text to send (it is also what gets signed)."""
        try:
            return await self._request(endpoint, method, path, params=params, body=body, signed=signed)
        except TimestampError:
            # Our clock and Bybit's disagree by more than the receive window: resync, retry once.
            await self._resync()
            return await self._request(endpoint, method, path, params=params, body=body, signed=signed)

    async def _resync(self) -> None:
        t0 = self._clock.time()
        server = await self.server_time()
        t1 = self._clock.time()
        self.time_offset = server - (t0 + t1) / 2
        log.warning(
            "local clock disagrees with Bybit; signing with a corrected time",
            extra={"account": self.account, "offset_seconds": round(self.time_offset, 3)},
        )

    async def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        body: str | None,
        signed: bool,
    ) -> dict:
        ban = self._host_bans.until(self._host, self._clock.time())
        if ban is not None:
            raise RateLimited("403", "IP banned by Bybit: waiting for the ban to end", endpoint, reset_at=ban)
        until = self.blocked_until(endpoint)
        if until is not None:
            raise RateLimited("10006", "rate limited: waiting for the reset time", endpoint, reset_at=until)

        # Built once: what is signed is what is sent (``encoded=True`` stops aiohttp re-quoting it).
        query = urlencode(params or {})
        payload = body if body is not None else ""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if signed:
            ts = int((self._clock.time() + self.time_offset) * 1000)
            signed_headers = sign_rest(
                self._api_key, self._secret, ts, payload if method == "POST" else query, self._recv_window_ms
            )
            headers.update(signed_headers.as_dict())
        url = URL(self._base_url + path + (f"?{query}" if query else ""), encoded=True)

        self._metrics.api_requests.labels(self.account, endpoint).inc()
        t0 = self._clock.time()
        timing = RequestTiming()
        started = self._clock.monotonic()
        try:
            async with self._session.request(
                method,
                url,
                data=payload.encode() if body is not None else None,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                proxy=self._proxy,
                trace_request_ctx=timing,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                resp_headers = resp.headers
        except TimeoutError:
            self._observe_duration(endpoint, timing, started)
            self._count_error(endpoint, "timeout")
            raise TransportError("timeout", f"no answer within {self._timeout.total:g} s", endpoint) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._observe_duration(endpoint, timing, started)
            self._count_error(endpoint, "network")
            raise TransportError("network", type(exc).__name__, endpoint) from None
        self._observe_duration(endpoint, timing, started)
        t1 = self._clock.time()
        reset_at = self._rate_limit_headers(endpoint, resp_headers)

        data: Any = None
        try:
            # Bytes, not text: an error page in another encoding is "not JSON", not a crash.
            data = load_json(raw) if raw else None
        except ValueError:
            data = None
        envelope: Envelope | None = None
        try:
            envelope = parse_envelope(data)
        except ValueError:
            pass
        if envelope is not None and envelope.time is not None:
            self._update_skew(envelope.time, t0, t1)
        elif isinstance(data, dict) and "time" in data:
            self._count_invalid("time")

        if status == 403:
            # Refused at Bybit's gateway: the per-endpoint reset header does not apply, and
            # every endpoint and account on this host waits (how long: HostBans.forbidden).
            refusal = self._host_bans.forbidden(
                self._host, self._clock.time(), raw, get_with_body=method == "GET" and bool(body)
            )
            return self._fail(endpoint, "403", refusal.message, refusal.until, cause=refusal.cause)
        if 300 <= status < 400:
            return self._fail(endpoint, "redirect", f"HTTP {status} redirect refused", None)
        if status != 200:
            message = envelope.message if envelope is not None else ""
            return self._fail(endpoint, str(status), message or f"HTTP {status}", reset_at)
        if envelope is None:
            self._invalid(endpoint, ValueError("the answer is not a Bybit JSON body"))
        if envelope.code != 0:
            code = str(envelope.code)
            if code == "10006":
                reset_at = reset_at or self._clock.time() + RATE_LIMIT_FALLBACK_SECONDS
            return self._fail(endpoint, code, envelope.message, reset_at)
        return data

    def _observe_duration(self, endpoint: str, timing: RequestTiming, started: float) -> None:
        """From the connection (or, without the fleet's trace hooks, the call's start) to now."""
        since = timing.connected_at if timing.connected_at is not None else started
        self._metrics.api_duration.labels(self.environment, endpoint).observe(self._clock.monotonic() - since)

    def _fail(
        self, endpoint: str, code: str, message: str, reset_at: float | None, cause: str | None = None
    ) -> NoReturn:
        self._count_error(endpoint, code)
        error = error_for(code, message, endpoint, reset_at, cause=cause)
        if isinstance(error, RateLimited):
            if reset_at is not None and code != "403":  # a 403 is recorded for the whole host
                self._blocked_until[endpoint] = reset_at
            log.warning(
                "IP banned by Bybit; pausing every call to this host"
                if code == "403"
                else "rate limited by Bybit; pausing this endpoint",
                extra={"account": self.account, "endpoint": endpoint, "code": code, "reset_at": reset_at},
            )
        raise error

    def _count_error(self, endpoint: str, code: str) -> None:
        self._metrics.api_errors.labels(self.account, endpoint, code_label(code)).inc()

    def _invalid(self, endpoint: str, problem: ValueError) -> NoReturn:
        """A success (or a body) without a usable result: an error of its own, never a state change."""
        self._count_error(endpoint, "invalid")
        raise TransportError("invalid", str(problem), endpoint)

    def _count_invalid(self, field: str) -> None:
        self._metrics.invalid_values.labels(self.account, field).inc()

    def _update_skew(self, server_time: float, t0: float, t1: float) -> None:
        # Bybit time minus local time, against the midpoint of the request.
        self._metrics.clock_skew.labels(self.account).set(server_time - (t0 + t1) / 2)

    def _rate_limit_headers(self, endpoint: str, headers: Mapping[str, str]) -> float | None:
        """Record X-Bapi-Limit / -Status; return the reset time (unix s) when given."""
        labels = (self.account, endpoint)
        for header, gauge in (
            ("X-Bapi-Limit-Status", self._metrics.rate_limit_remaining),
            ("X-Bapi-Limit", self._metrics.rate_limit),
        ):
            text = headers.get(header)
            if text is None:
                continue
            value = header_count(text)
            if value is None:
                self._count_invalid(header)
            else:
                gauge.labels(*labels).set(value)
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
        if not reset:
            return None
        sane, reset_at = rate_limit_reset(reset, self._clock.time())
        if not sane:
            self._count_invalid("X-Bapi-Limit-Reset-Timestamp")
        return reset_at
