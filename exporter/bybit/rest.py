"""Bybit V5 REST client: the calls the exporter, the drill and the doctor make, signed (thin I/O shell).

Each account gets its own :class:`RestClient`; all of them send through one transport
(:mod:`.transport`): the fleet's keep-alive pool (:class:`exporter.http.pool.Pool`), or an
aiohttp session (calls through a proxy, the drill, the doctor, a test's). The client records
nothing itself: it tells a :class:`RestObserver` what happened (a call made, its duration, a
failure by code, an unusable value, the rate-limit headers, the clock skew), and the
exporter's observer (:class:`exporter.monitor.rest_metrics.RestMetrics`) turns that into
metrics and log lines; the drill gives one of its own. Calls are named by the short endpoint
labels of the one table in :mod:`exporter.dcp` (``ENDPOINT_PATHS``).

A call's duration runs from the moment it has its connection to the end of the body: the
transport notes that moment in the call's :class:`~exporter.http.pool.RequestTiming`, and the
wait for a pool slot is reported on its own; with an aiohttp session without the fleet's
connector or trace hooks (a test's) it runs from the start of the call. Errors are the typed
errors of :mod:`exporter.bybit.errors`, never carrying credentials.

What an answer means is decided once, at this edge, by :func:`.answers.classify` (with
:mod:`.models` and :mod:`.sanity`): a success without a usable result is the error
``invalid``, a number out of its range is reported as an invalid value and left unused, and a
redirect is the error ``redirect`` (never followed: the signed headers would go to another
host). The transport reads a body within :data:`~exporter.runtime.bounded.MAX_BODY`, on the
wire and once inflated (else the error ``too_large``, the connection dropped, nothing parsed),
and within the call's timeout, which covers the body too. The query string is built once,
signed, and sent byte for byte as signed.

Every account polls through here every few seconds, so the per-call work is kept to what the
call needs: the HMAC key is keyed once per client (:class:`.signing.RestSigner`), and the
pool writes the request in one piece and parses the answer without a response object.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp

from ..dcp import ENDPOINT_PATHS
from ..http.pool import RequestTiming, Transport
from ..runtime.bounded import ACCEPT_ENCODING, TooLarge
from ..runtime.clock import SYSTEM_CLOCK, Clock
from ..secrets import Secret
from .answers import classify
from .errors import RateLimited, TimestampError, TransportError, error_for
from .models import (
    DcpSetting,
    OrderPage,
    parse_dcp_info,
    parse_envelope,
    parse_order_page,
    parse_server_time,
    set_dcp_request,
)
from .pacing import HostBans
from .signing import DEFAULT_RECV_WINDOW_MS, RestSigner
from .timeframe import TimeFrame
from .transport import transport_of

SERVER_TIME = ENDPOINT_PATHS["server_time"]
QUERY_DCP_INFO = ENDPOINT_PATHS["query_dcp_info"]
ORDER_HISTORY = ENDPOINT_PATHS["order_history"]
ORDER_CREATE = ENDPOINT_PATHS["create_order"]
ORDER_CANCEL = ENDPOINT_PATHS["cancel_order"]
OPEN_ORDERS = ENDPOINT_PATHS["open_orders"]
TICKERS = ENDPOINT_PATHS["tickers"]

ACCOUNT_INFO = ENDPOINT_PATHS["account_info"]  # the account mode (unifiedMarginStatus)
API_KEY_INFO = ENDPOINT_PATHS["api_key_info"]  # the key's own permissions, IPs and expiry (doctor)


class RestObserver(Protocol):
    """What an owner of a REST client hears, per call; ``endpoint`` is a label of ``ENDPOINT_PATHS``."""

    def requested(self, endpoint: str) -> None:
        """A call goes out (a retry after a resync is a call of its own)."""

    def duration(self, endpoint: str, seconds: float) -> None:
        """From the connection (or the call's start) to the end of the body, or to the failure."""

    def failed(self, endpoint: str, code: str) -> None:
        """The call failed: a retCode, an HTTP status, or timeout / network / redirect / invalid."""

    def invalid_value(self, field: str) -> None:
        """A field (``time``, a rate-limit header) held a value that was left unused."""

    def rate_limit(self, endpoint: str, remaining: float | None, limit: float | None) -> None:
        """The answer's X-Bapi-Limit-Status and X-Bapi-Limit (None: absent or unusable)."""

    def clock_skew(self, seconds: float) -> None:
        """Bybit's clock minus ours, from the answer's ``time`` against the request's midpoint."""

    def paused(self, endpoint: str, code: str, reset_at: float | None) -> None:
        """Rate limited (10006: this endpoint) or IP banned (403: every call to the host) until ``reset_at``."""

    def resynced(self, offset: float) -> None:
        """After a 10002 the client signs with ``offset`` seconds added to the local clock."""


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
        session: aiohttp.ClientSession | Transport,
        *,
        account: str,
        environment: str,
        base_url: str,
        api_key: str,
        api_secret: Secret,
        observer: RestObserver,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        timeout: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        host_bans: HostBans | None = None,
        timeframe: TimeFrame | None = None,
    ) -> None:
        self._transport = transport_of(session)
        self.account = account
        self.environment = environment  # the REST latency is labelled by it, not by the account
        self._base_url = base_url.rstrip("/")
        self._host = urlsplit(self._base_url).netloc or self._base_url
        # A 403 bans this IP for every client: the fleet passes one record to all of them.
        self._host_bans = host_bans if host_bans is not None else HostBans()
        self._api_key = api_key
        self._secret = api_secret if isinstance(api_secret, Secret) else Secret(api_secret)
        self._observer = observer
        self._recv_window_ms = recv_window_ms
        self._timeout = timeout
        self._proxy = proxy_for(self._base_url)
        self._clock = clock
        # Bybit's clock minus ours: added to the local clock when signing. The account's stream
        # and backfill share it; a resync (at the stream's start, after a 10002) sets it.
        self.timeframe = timeframe if timeframe is not None else TimeFrame()
        self._blocked_until: dict[str, float] = {}
        # The wall-clock window of the last answer: sent (its connection in hand) and received.
        self._answered = (0.0, 0.0)
        self._signer = RestSigner(api_key, self._secret, recv_window_ms)

    @property
    def time_offset(self) -> float:
        """Seconds added to the local clock when signing (the shared :class:`.timeframe.TimeFrame`'s)."""
        return self.timeframe.offset

    async def learn_time(self) -> bool:
        """Read Bybit's server time into the time frame; False when it was refused as absurd."""
        return await self._resync()

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

    async def account_info(self) -> dict[str, Any]:
        """``result`` of ``GET /v5/account/info``: the account mode is its ``unifiedMarginStatus``."""
        body = await self._call("account_info", "GET", ACCOUNT_INFO)
        return self._result("account_info", body)

    async def api_key_info(self) -> dict[str, Any]:
        """``result`` of ``GET /v5/user/query-api``: the calling key's ``readOnly``, ``permissions``,
        ``ips``, ``expiredAt`` and ``uta`` (any key may read its own)."""
        body = await self._call("api_key_info", "GET", API_KEY_INFO)
        return self._result("api_key_info", body)

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

    async def _resync(self) -> bool:
        server = await self.server_time()
        # From when the request left, not from before its wait for a pooled connection: a thousand
        # accounts starting together queue for the pool, and a midpoint taken from before the
        # wait put Bybit seconds ahead of a host whose clock was right (past Bybit's 1 s allowance
        # for a timestamp ahead of its clock, so the signed calls after it were refused).
        sent_at, received_at = self._answered
        applied = self.timeframe.server_time(server, sent_at, received_at)
        if applied:
            self._observer.resynced(self.timeframe.offset)
        return applied

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
        clock = self._clock
        t0 = clock.time()  # the request's wall time: the bans, the signature and the skew's midpoint
        ban = self._host_bans.until(self._host, t0)
        if ban is not None:
            raise RateLimited("403", "IP banned by Bybit: waiting for the ban to end", endpoint, reset_at=ban)
        if self._blocked_until:
            until = self.blocked_until(endpoint)
            if until is not None:
                raise RateLimited("10006", "rate limited: waiting for the reset time", endpoint, reset_at=until)

        # Built once: what is signed is what is sent, byte for byte.
        if params:
            query = urlencode(params)
            url = f"{self._base_url}{path}?{query}"
        else:
            query = ""
            url = self._base_url + path
        if body is not None:
            payload = body
            headers = {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        else:
            payload = ""
            headers = {"Accept-Encoding": ACCEPT_ENCODING}  # what the transport inflates, counting
        if signed:
            self._signer.headers(self.timeframe.bybit_ms(t0), payload if method == "POST" else query, headers)

        self._observer.requested(endpoint)
        timing = RequestTiming()
        started = clock.monotonic()
        try:
            reply = await self._transport.send(
                method,
                url,
                headers,
                payload.encode() if body is not None else None,
                self._timeout,
                self._proxy,
                timing,
            )
        except (TooLarge, aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            self._observe_duration(endpoint, timing, started)
            code, message = _transport_failure(exc, self._timeout)
            self._count_error(endpoint, code)
            raise TransportError(code, message, endpoint) from None
        self._observe_duration(endpoint, timing, started)
        raw = reply.body
        sent_at = t0 if timing.connected_at is None else t0 + (timing.connected_at - started)
        self._answered = (sent_at, clock.time())
        answer = classify(reply.status, reply.headers, raw, *self._answered)
        observer = self._observer
        if answer.remaining is not None or answer.limit is not None:
            observer.rate_limit(endpoint, answer.remaining, answer.limit)
        for field in answer.invalid:
            observer.invalid_value(field)
        if answer.skew is not None:
            observer.clock_skew(answer.skew)
        if answer.code is None:
            return answer.data
        if answer.ban_until is not None:
            # Refused at Bybit's gateway: every endpoint and account on this host waits, for as
            # long as the cause HostBans tells from the body and the 403s before it asks.
            refusal = self._host_bans.forbidden(
                self._host, self._clock.time(), raw, get_with_body=method == "GET" and bool(body)
            )
            return self._fail(endpoint, "403", refusal.message, refusal.until, cause=refusal.cause)
        if answer.code == "invalid":
            self._invalid(endpoint, ValueError(answer.message))
        return self._fail(endpoint, answer.code, answer.message, answer.reset_at)

    def _observe_duration(self, endpoint: str, timing: RequestTiming, started: float) -> None:
        """From the connection (or, without the fleet's connector or trace hooks, the call's start) to now."""
        since = timing.connected_at if timing.connected_at is not None else started
        self._observer.duration(endpoint, self._clock.monotonic() - since)

    def _fail(
        self, endpoint: str, code: str, message: str, reset_at: float | None, cause: str | None = None
    ) -> NoReturn:
        self._count_error(endpoint, code)
        error = error_for(code, message, endpoint, reset_at, cause=cause)
        if isinstance(error, RateLimited):
            if reset_at is not None and code != "403":  # a 403 is recorded for the whole host
                self._blocked_until[endpoint] = reset_at
            self._observer.paused(endpoint, code, reset_at)
        raise error

    def _result(self, endpoint: str, body: dict) -> dict[str, Any]:
        result = body.get("result")
        if not isinstance(result, dict):
            self._invalid(endpoint, ValueError("the answer has no result object"))
        return result

    def _count_error(self, endpoint: str, code: str) -> None:
        self._observer.failed(endpoint, code)

    def _invalid(self, endpoint: str, problem: ValueError) -> NoReturn:
        """A success (or a body) without a usable result: an error of its own, never a state change."""
        self._count_error(endpoint, "invalid")
        raise TransportError("invalid", str(problem), endpoint)


def _transport_failure(exc: BaseException, timeout: float) -> tuple[str, str]:
    """The code and message of a call that got no usable answer: too large, too slow, or no network."""
    if isinstance(exc, TooLarge):
        return "too_large", str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout", f"no answer within {timeout:g} s"
    return "network", type(exc).__name__
