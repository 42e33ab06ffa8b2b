"""Bybit V5 REST endpoints over aiohttp: the signed-request pipeline (key, timestamp,
signature, rate limit, forced error, then the endpoint) and one handler per endpoint.

The shapes and the checks themselves are pure functions in :mod:`.rest`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import rest
from .accounts import SimAccount, new_order_id
from .core import SimCore
from .rest import ApiError

DCP_PATHS = ("/v5/account/query-dcp-info", "/v5/order/disconnected-cancel-all")
HTTP_STATUS_FAULTS = (403, *range(500, 600))  # forced errors sent as HTTP statuses, not retCodes

# handler(account, query params, JSON body or None, now) -> response body
Endpoint = Callable[[SimAccount, dict[str, str], Any, float], dict]


def json_response(body: dict, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    text = json.dumps(body, separators=(",", ":"))
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


class RestRoutes:
    def __init__(self, core: SimCore) -> None:
        self._core = core

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v5/market/time", self._server_time)
        router.add_get("/v5/account/query-dcp-info", self._signed(self._query_dcp_info))
        router.add_post("/v5/order/disconnected-cancel-all", self._signed(self._set_dcp))
        router.add_get("/v5/user/query-api", self._signed(self._api_key_info))
        router.add_get("/v5/account/info", self._signed(self._account_info))
        router.add_post("/v5/order/create", self._signed(self._create_order))
        router.add_post("/v5/order/cancel", self._signed(self._cancel_order))
        router.add_get("/v5/order/realtime", self._signed(self._open_orders))
        router.add_get("/v5/market/tickers", self._tickers)
        router.add_get("/v5/order/history", self._signed(self._order_history))

    def _forced_response(self, code: int, now: float, headers: dict[str, str] | None = None) -> web.Response:
        if code in HTTP_STATUS_FAULTS:
            return web.Response(text=f"{code} forced by simulator", status=code, headers=headers)
        return json_response(rest.error_body(ApiError(code), now), headers)

    async def _canned(self, request: web.Request) -> web.Response | None:
        """The forced raw answer for this request's path, after its delay, or None."""
        canned = self._core.faults.take_forced_response(request.path)
        if canned is None:
            return None
        if canned.delay > 0:
            await self._core.clock.sleep(canned.delay)
        return web.Response(text=canned.body, status=canned.status, headers=canned.headers)

    async def _server_time(self, request: web.Request) -> web.Response:
        canned = await self._canned(request)
        if canned is not None:
            return canned
        now = self._core.clock.time()
        forced = self._core.faults.take_forced_error(request.path)
        if forced is not None:
            return self._forced_response(forced, now)
        return json_response(rest.envelope(rest.server_time_result(now), now=now))

    def _signed(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The aiohttp handler that authenticates, rate-limits and applies forced errors, in
        Bybit's order, before it runs ``endpoint``. Every call is recorded on the account."""

        async def handle(request: web.Request) -> web.Response:
            canned = await self._canned(request)
            if canned is not None:
                return canned
            core = self._core
            now = core.clock.time()
            path = request.path
            params = dict(request.query)
            raw = await request.text() if request.method == "POST" else ""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            api_key = request.headers.get("X-BAPI-API-KEY", "")
            acct = core.accounts.get(api_key)
            if acct is None:
                return json_response(rest.error_body(ApiError(10003), now))
            record = {"method": request.method, "path": path, "params": params, "body": body, "ret_code": None}
            acct.rest_calls.append(record)
            headers = None
            try:
                ts, recv = rest.check_timestamp(
                    request.headers.get("X-BAPI-TIMESTAMP"), request.headers.get("X-BAPI-RECV-WINDOW"), now
                )
                # Bybit checks the signature against the query string as it arrived, not a re-quoted one.
                payload = request.rel_url.raw_query_string if request.method == "GET" else raw
                rest.check_signature(acct, ts, recv, payload, request.headers.get("X-BAPI-SIGN"))
                if not acct.allows_ip(request.remote):
                    raise ApiError(10010)
                limit = core.limiter.hit(api_key, path, now)
                headers = limit.headers()
                if not limit.allowed:
                    raise ApiError(10006)
                forced = core.faults.take_forced_error(path)
                if forced is not None:
                    record["ret_code"] = forced
                    if forced == 10006:
                        headers["X-Bapi-Limit-Status"] = "0"
                    return self._forced_response(forced, now, headers)
                if request.method == "POST" and acct.read_only:
                    raise ApiError(10005, "Permission denied: the API key is read-only")
                if request.method == "POST" and raw and body is None:
                    raise ApiError(10001, "params error: body is not valid JSON")
                result = endpoint(acct, params, body, now)
            except ApiError as err:
                record["ret_code"] = err.code
                return json_response(rest.error_body(err, now), headers)
            record["ret_code"] = result.get("retCode", 0)
            return json_response(result, headers)

        return handle

    # --- endpoints: (account, params, body, now) -> body ----------------------------------
    def _query_dcp_info(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        return rest.envelope({"dcpInfos": acct.dcp_infos(now)}, msg="success", now=now)

    def _api_key_info(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        return rest.envelope(acct.key_info(now), msg="", now=now)

    def _account_info(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        return rest.envelope(acct.account_info(now), now=now)

    def _set_dcp(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        product, window = rest.parse_set_dcp(body if body is not None else {})
        acct.apply_due_settings(now)
        if product not in acct.dcp:  # a pending window implies the product is enabled
            raise ApiError(10001, f"DCP is not enabled for product {product}; contact your account manager")
        acct.request_window(product, window, now, self._core.settle_delay * self._core.time_scale)
        self._core.poke()
        return rest.envelope(msg="success", now=now, with_result=False)

    def _create_order(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        spec = rest.parse_create(body)
        order = acct.new_order(now, order_id=new_order_id(self._core.rng), **spec)
        if spec["order_type"] == "Market":  # fills at once; only limit orders rest
            order.update(orderStatus="Filled", leavesQty="0", leavesValue="0", cumExecQty=order["qty"])
        self._core.push_orders(acct.api_key, [order])
        return rest.envelope({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}, now=now)

    def _cancel_order(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        order = rest.cancel_order(acct, body, now)
        self._core.push_orders(acct.api_key, [order])
        return rest.envelope({"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}, now=now)

    async def _tickers(self, request: web.Request) -> web.Response:
        """Unsigned, like Bybit's market data; every symbol trades at :data:`rest.LAST_PRICE`."""
        now = self._core.clock.time()
        try:
            result = rest.tickers(dict(request.query))
        except ApiError as err:
            return json_response(rest.error_body(err, now))
        return json_response(rest.envelope(result, now=now))

    def _open_orders(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        return rest.envelope(rest.open_orders(acct, params), now=now)

    def _order_history(self, acct: SimAccount, params: dict[str, str], body: Any, now: float) -> dict:
        core = self._core
        history = rest.order_history(acct, params, now, by=core.history_filter, delay=core.history_delay)
        return rest.envelope(history, now=now)
