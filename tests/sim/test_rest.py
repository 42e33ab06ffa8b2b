"""RestClient against the simulator (and a tiny misbehaving server) over loopback."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from helpers import ShiftedClock, rest_client, without_proxy_variables

from exporter.bybit.errors import (
    AuthError,
    BybitError,
    RateLimited,
    ServerError,
    TimestampError,
    TransportError,
    code_label,
    error_for,
    hint,
    hint_for,
)
from exporter.bybit.models import DcpSetting
from exporter.bybit.pacing import IP_BAN_SECONDS, MAX_REGION_BAN_SECONDS, REGION_BAN_SECONDS, HostBans, forbidden_cause
from exporter.bybit.rest import RestClient, proxy_for
from exporter.metrics import Metrics
from exporter.simulator import Simulator
from exporter.simulator.pki import make_server_pki
from exporter.simulator.server import server_tls

KEY = "rest-test-key"
SECRET = "rest-test-secret-0123456789"


def sample(metrics: Metrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def sim():
    async with Simulator(rate_limit_per_second=50) as s:
        s.add_account(KEY, SECRET)
        yield s


def client(rest_session, base_url, metrics, *, secret=SECRET, key=KEY, **kw) -> RestClient:
    return rest_client(rest_session, base_url, metrics, key, secret, **kw)


async def test_query_set_and_counted(sim, rest_session):
    m = Metrics()
    c = client(rest_session, sim.rest_url, m)
    info = await c.query_dcp_info()
    assert info == {
        "SPOT": DcpSetting("SPOT", "ON", 10),
        "DERIVATIVES": DcpSetting("DERIVATIVES", "ON", 10),
    }
    await c.set_dcp("SPOT", 25)
    assert sim.account(KEY).set_dcp_calls == [("SPOT", 25)]
    assert sim.account(KEY).rest_calls[-1]["body"] == {"product": "SPOT", "timeWindow": 25}
    assert (await c.query_dcp_info())["SPOT"].window == 25
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="query_dcp_info") == 2
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="set_dcp") == 1
    assert (
        sample(m, "bybit_dcp_api_request_duration_seconds_count", environment="testnet", endpoint="query_dcp_info") == 2
    )
    assert sample(m, "bybit_dcp_api_rate_limit", account="acct", endpoint="query_dcp_info") == 50
    assert sample(m, "bybit_dcp_api_rate_limit_remaining", account="acct", endpoint="query_dcp_info") == 48
    skew = sample(m, "bybit_dcp_clock_skew_seconds", account="acct")
    assert skew is not None and abs(skew) < 0.5


async def test_server_time_and_skew(sim, rest_session):
    m = Metrics()
    # Our clock is 3 s behind: Bybit time minus local time is about +3.
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: time.time() - 3.0))
    server = await c.server_time()
    assert abs(server - time.time()) < 0.5
    assert 2.5 < sample(m, "bybit_dcp_clock_skew_seconds", account="acct") < 3.5


async def test_rsa_signing(rsa_pem_pair):
    private_pem, public_pem = rsa_pem_pair()
    # The session closes before the server (else the server waits for its keep-alive connections).
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        sim.add_account("rsa-key", rsa_public_key_pem=public_pem)
        c = client(session, sim.rest_url, Metrics(), key="rsa-key", secret=private_pem)
        assert set(await c.query_dcp_info()) == {"SPOT", "DERIVATIVES"}
        await c.set_dcp("DERIVATIVES", 12)
        assert sim.account("rsa-key").set_dcp_calls == [("DERIVATIVES", 12)]


async def test_wrong_secret_is_auth_error_10004_without_secret_in_text(sim, rest_session):
    m = Metrics()
    wrong = "wrong-secret-abcdef-123456"
    c = client(rest_session, sim.rest_url, m, secret=wrong)
    with pytest.raises(AuthError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "10004"
    assert wrong not in str(exc.value) and wrong not in repr(exc.value)
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="10004") == 1


async def test_timestamp_error_resyncs_and_retries_once(sim, rest_session):
    m = Metrics()
    # 30 s behind: far outside the 5 s receive window.
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: time.time() - 30.0))
    assert "SPOT" in await c.query_dcp_info()
    assert 29 < c.time_offset < 31
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="10002") == 1
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="query_dcp_info") == 2
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="server_time") == 1
    # Later calls sign with the corrected time: no more 10002.
    await c.query_dcp_info()
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="10002") == 1


async def test_rate_limit_10006_blocks_endpoint_until_reset(sim, rest_session):
    m = Metrics()
    now = [time.time()]
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: now[0]))
    sim.force_error("/v5/account/query-dcp-info", 10006, count=1)
    with pytest.raises(RateLimited) as exc:
        await c.query_dcp_info()
    assert exc.value.reset_at is not None and exc.value.reset_at > now[0] - 1
    calls = len(sim.account(KEY).rest_calls)
    # Before the reset time: refused locally, no request sent.
    now[0] = exc.value.reset_at - 0.01
    with pytest.raises(RateLimited):
        await c.query_dcp_info()
    assert len(sim.account(KEY).rest_calls) == calls
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="query_dcp_info") == 1
    # Other endpoints are not blocked.
    await c.set_dcp("SPOT", 11)
    # After the reset time: calls go out again.
    now[0] = exc.value.reset_at + 0.01
    assert "SPOT" in await c.query_dcp_info()
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="10006") == 1


async def test_http_403_backs_off(sim, rest_session):
    m = Metrics()
    now = [time.time()]
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: now[0]))
    sim.force_error("/v5/account/query-dcp-info", 403, count=1)
    with pytest.raises(RateLimited) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "403" and exc.value.reset_at >= now[0] + 599
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="403") == 1
    now[0] += 300
    with pytest.raises(RateLimited):
        await c.query_dcp_info()
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="query_dcp_info") == 1


async def test_http_403_bans_the_host_for_every_endpoint_and_client(sim, rest_session):
    m = Metrics()
    now = [time.time()]
    bans = HostBans()
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: now[0]), host_bans=bans)
    other = client(rest_session, sim.rest_url, m, account="other", clock=ShiftedClock(lambda: now[0]), host_bans=bans)
    elsewhere = client(
        rest_session,
        sim.rest_url.replace("127.0.0.1", "localhost"),
        m,
        account="elsewhere",
        clock=ShiftedClock(lambda: now[0]),
        host_bans=bans,
    )
    sim.force_error("/v5/account/query-dcp-info", 403, count=1)
    with pytest.raises(RateLimited) as first:
        await c.query_dcp_info()
    calls = len(sim.account(KEY).rest_calls)
    # Another endpoint of the same client, and another client on the same host: refused locally.
    for call in (lambda: c.set_dcp("SPOT", 11), other.query_dcp_info, lambda: other.order_history("linear", 0, 1)):
        with pytest.raises(RateLimited) as exc:
            await call()
        assert exc.value.code == "403" and exc.value.reset_at == first.value.reset_at
    assert len(sim.account(KEY).rest_calls) == calls
    assert sample(m, "bybit_dcp_api_requests_total", account="acct", endpoint="set_dcp") is None  # never sent
    assert sample(m, "bybit_dcp_api_requests_total", account="other", endpoint="query_dcp_info") is None
    # Another host is not banned.
    assert "SPOT" in await elsewhere.query_dcp_info()
    # After the ban: calls go out again.
    now[0] = first.value.reset_at + 0.01
    await c.set_dcp("SPOT", 11)
    assert "SPOT" in await other.query_dcp_info()


async def test_order_history_pages_carry_category(sim, rest_session):
    for _ in range(7):
        sim.place_order(KEY, category="linear")
    sim.place_order(KEY, category="spot")
    c = client(rest_session, sim.rest_url, Metrics())
    now_ms = int(time.time() * 1000)
    seen, cursor, pages = [], None, 0
    while True:
        orders, cursor = await c.order_history("linear", now_ms - 60_000, now_ms + 1000, cursor=cursor, limit=3)
        seen += orders
        pages += 1
        if not cursor:
            break
    assert pages == 3 and len(seen) == 7
    assert {o["category"] for o in seen} == {"linear"}
    assert len({o["orderId"] for o in seen}) == 7


async def test_server_errors_typed_and_counted(sim, rest_session):
    m = Metrics()
    c = client(rest_session, sim.rest_url, m)
    sim.force_error("/v5/account/query-dcp-info", 10016, count=1)
    with pytest.raises(BybitError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "10016"
    sim.force_error("/v5/account/query-dcp-info", 502, count=1)
    with pytest.raises(BybitError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "502"
    for code in ("10016", "502"):
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code=code) == 1


async def test_timeout_and_network_errors(rest_session):
    async def slow(request):
        await asyncio.sleep(2)
        return web.json_response({"retCode": 0, "result": {}})

    async def garbage(request):
        return web.Response(text="<html>not json</html>")

    app = web.Application()
    app.router.add_get("/v5/account/query-dcp-info", slow)
    app.router.add_get("/v5/market/time", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        m = Metrics()
        c = client(rest_session, f"http://127.0.0.1:{port}", m, timeout=0.2)
        with pytest.raises(TransportError) as exc:
            await c.query_dcp_info()
        assert exc.value.code == "timeout"
        with pytest.raises(TransportError) as exc:
            await c.server_time()
        assert exc.value.code == "invalid"  # an answer, but not Bybit's JSON
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="timeout") == 1
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="server_time", code="invalid") == 1
    finally:
        await runner.cleanup()
    # Nothing listens there any more: connection refused.
    m = Metrics()
    c = client(rest_session, f"http://127.0.0.1:{port}", m)
    with pytest.raises(TransportError) as exc:
        await c.query_dcp_info()
    assert exc.value.code == "network"
    assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="network") == 1


async def test_non_utf8_error_page_is_a_counted_error(rest_session):
    async def undecodable(request):
        return web.Response(body=b"\xff\xfe<html>bad gateway \xe9</html>", status=502, content_type="text/html")

    async def undecodable_ok(request):
        return web.Response(body=b"\xff\xfe\x00", status=200, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/v5/account/query-dcp-info", undecodable)
    app.router.add_get("/v5/market/time", undecodable_ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        m = Metrics()
        c = client(rest_session, f"http://127.0.0.1:{port}", m)
        with pytest.raises(BybitError) as exc:
            await c.query_dcp_info()
        assert exc.value.code == "502"
        with pytest.raises(TransportError) as exc:
            await c.server_time()
        assert exc.value.code == "invalid"
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="query_dcp_info", code="502") == 1
        assert sample(m, "bybit_dcp_api_errors_total", account="acct", endpoint="server_time", code="invalid") == 1
    finally:
        await runner.cleanup()


@pytest.fixture
def proxy_env(monkeypatch):
    """No proxy variable but those a test sets, and the per-URL proxy worked out afresh."""
    without_proxy_variables(monkeypatch)
    proxy_for.cache_clear()
    yield monkeypatch
    proxy_for.cache_clear()


@pytest.fixture
async def forward_proxy():
    """A plain HTTP forward proxy on loopback: its URL, and the URLs it was asked for (then fetched)."""
    asked: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        asked.append(str(request.url))  # absolute-form: the Host header names the target
        sent = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection", "proxy-connection")}
        async with (
            aiohttp.ClientSession() as s,
            s.request(request.method, request.url, headers=sent, data=await request.read()) as answer,
        ):
            kept = {
                k: v for k, v in answer.headers.items() if k.lower() == "content-type" or k.lower().startswith("x-")
            }
            return web.Response(status=answer.status, body=await answer.read(), headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", asked
    finally:
        await runner.cleanup()


async def test_rest_calls_go_through_the_environments_proxy(sim, rest_session, proxy_env, forward_proxy):
    """As the private stream does: a desk whose only way out is its proxy polls through it."""
    proxy_url, asked = forward_proxy
    proxy_env.setenv("HTTP_PROXY", proxy_url)
    settings = await client(rest_session, sim.rest_url, Metrics()).query_dcp_info()
    assert settings  # the simulator's default DCP settings came back through the proxy
    assert [u.split("?")[0] for u in asked] == [sim.rest_url + "/v5/account/query-dcp-info"]


async def test_no_proxy_sends_rest_calls_direct(sim, rest_session, proxy_env, forward_proxy):
    proxy_url, asked = forward_proxy
    proxy_env.setenv("HTTP_PROXY", proxy_url)
    proxy_env.setenv("NO_PROXY", "127.0.0.1")
    assert await client(rest_session, sim.rest_url, Metrics()).query_dcp_info()
    assert asked == []


def test_the_rest_proxy_is_http_or_https_and_worked_out_once(proxy_env):
    proxy_env.setenv("HTTPS_PROXY", "socks5://proxy.example:1080")  # aiohttp cannot speak it: direct
    assert proxy_for("https://api.bybit.com") is None
    proxy_for.cache_clear()
    proxy_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_for("https://api.bybit.com") == "http://proxy.example:3128"
    proxy_env.setenv("HTTPS_PROXY", "http://another.example:3128")  # a process's environment does not change
    assert proxy_for("https://api.bybit.com") == "http://proxy.example:3128"
    assert proxy_for("http://127.0.0.1:8090") is None  # only HTTPS_PROXY is set: plain http goes direct


# --- what each failure means: the hints (docs/v5/error.mdx, rate-limit/rate-limit.mdx, guide.mdx) ----


@pytest.mark.parametrize(
    "code,words,kind",
    [
        ("401", "wrong key or authentication headers", BybitError),
        ("404", "category that does not match the account mode", BybitError),
        ("429", "system-level frequency protection", RateLimited),
        ("10000", "server timeout", ServerError),
        ("10024", "compliance rules", BybitError),
        ("10027", "transactions are banned", BybitError),
        ("10028", "unified (UTA) accounts only", BybitError),
        ("10029", "whitelist", BybitError),
        ("-1", "request expired", TimestampError),
    ],
)
def test_documented_codes_have_their_own_hint_and_type(code, words, kind):
    assert words in hint(code)
    assert type(error_for(code)) is kind
    assert code_label(code) == code


def test_the_deprecated_10018_is_no_documented_code():
    assert code_label("10018") == "other" and hint("10018") == "see the exporter's log"


def test_a_403_is_told_apart_by_its_body_and_by_persisting_past_the_ban():
    bans, now = HostBans(), 1_000_000.0
    first = bans.forbidden("api.bybit.com", now, b"403, access too frequent")
    assert (first.cause, first.until) == ("rate_limit", now + IP_BAN_SECONDS)
    # another client's answer under the same ban changes nothing
    assert bans.forbidden("API.bybit.com", now + 1, b"") == first
    # the first try after the ban ended is refused again: it persisted past the ban
    again = bans.forbidden("api.bybit.com", first.until + 30, b"<html>403 Forbidden</html>")
    assert again.cause == "region" and again.until == first.until + 30 + REGION_BAN_SECONDS
    later = bans.forbidden("api.bybit.com", again.until + 30, b"")
    assert later.cause == "region" and later.until - (again.until + 30) == 2 * REGION_BAN_SECONDS
    # waits grow to six hours, never further
    at, waits = later.until, []
    for _ in range(10):
        verdict = bans.forbidden("api.bybit.com", at + 1, b"")
        waits.append(verdict.until - (at + 1))
        at = verdict.until
    assert waits[-1] == MAX_REGION_BAN_SECONDS and max(waits) == MAX_REGION_BAN_SECONDS
    # "too frequent" is the rate limit even when it repeats; a 403 a day later starts afresh
    assert bans.forbidden("api.bybit.com", at + 5, "access too frequent").cause == "rate_limit"
    assert bans.forbidden("api.bybit.com", at + 5 + 86400, b"").cause == "rate_limit"


def test_a_403_body_naming_a_country_and_a_get_with_a_body_have_causes_of_their_own():
    blocked = b"The Amazon CloudFront distribution is configured to block access from your country."
    assert forbidden_cause(blocked, get_with_body=False, persisted=False) == "region"
    assert forbidden_cause(b"", get_with_body=True, persisted=False) == "get_with_body"
    assert forbidden_cause(b"", get_with_body=False, persisted=False) == "rate_limit"
    assert "blocked by region" in hint("403", "region")
    assert "GET sent with a JSON body" in hint("403", "get_with_body")


async def test_a_403_that_persists_past_the_ban_says_region_and_waits_longer(sim, rest_session):
    m = Metrics()
    now = [time.time()]
    c = client(rest_session, sim.rest_url, m, clock=ShiftedClock(lambda: now[0]))
    sim.force_response("/v5/account/query-dcp-info", status=403, body="403, access too frequent")
    with pytest.raises(RateLimited) as first:
        await c.query_dcp_info()
    assert first.value.cause == "rate_limit" and first.value.reset_at == pytest.approx(now[0] + IP_BAN_SECONDS)
    assert "IP rate limited" in hint_for(first.value)
    now[0] = first.value.reset_at + 1  # the ban is over; the next poll is refused again
    sim.force_response("/v5/account/query-dcp-info", status=403, body="<html><h1>403 Forbidden</h1></html>")
    with pytest.raises(RateLimited) as second:
        await c.query_dcp_info()
    assert second.value.cause == "region"
    assert second.value.reset_at == pytest.approx(now[0] + REGION_BAN_SECONDS)
    assert "this IP may be blocked by region" in hint_for(second.value)
    calls = len(sim.account(KEY).rest_calls)
    now[0] += IP_BAN_SECONDS + 1  # ten minutes on: not knocking again yet
    with pytest.raises(RateLimited):
        await c.query_dcp_info()
    assert len(sim.account(KEY).rest_calls) == calls


async def test_a_certificate_failure_gets_a_hint_of_its_own_not_dns(rest_session, tmp_path):
    """A server whose CA the process does not trust: TLS, not DNS, proxy or firewall."""
    pki = make_server_pki(tmp_path)
    secure = Simulator()
    await secure.start(tls=server_tls(pki.cert, pki.key))
    try:
        secure.add_account(KEY, SECRET)
        c = client(rest_session, secure.rest_url, Metrics())
        with pytest.raises(TransportError) as exc:
            await c.query_dcp_info()
    finally:
        await secure.stop()
    assert exc.value.code == "network"
    assert "TLS certificate not trusted" in hint_for(exc.value)
    assert "DNS" not in hint_for(exc.value)
    assert "DNS" in hint_for(TransportError("network", "ClientConnectorError"))  # a refused connection still is


def test_the_poll_error_gauge_follows_the_hint_when_the_code_stays():
    from exporter.monitor.projections import set_poll_error

    m = Metrics()
    set_poll_error(m, "acct", "network")
    set_poll_error(m, "acct", "network", hint("network", "tls_certificate"))
    rows = [labels for labels, _ in m.last_poll_error.rows()]
    assert rows == [("acct", "network", hint("network", "tls_certificate"))]
