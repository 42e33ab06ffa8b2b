"""Guardian liveness: the pure switch, and the guardian on the simulator with each source: the
real liveness route (http), a touched file (file), and a real Prometheus on loopback (prometheus).

DCP timers run at 0.1x (a 10 s window lasts 1 s); the liveness timeout is 1 s (2 s for Prometheus).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from alert_stack import prometheus_query, start_prometheus
from helpers import eventually, free_port, prometheus_guardian, stop_process
from virtual_clock import VirtualClock

from exporter.config import AccountConfig, Config, GuardianLiveness
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.monitor.guardian import WATCHER_RESTART_DELAY, Guardian
from exporter.monitor.liveness import Alive, NotAlive, Switch, Unknown, file_verdict, prometheus_verdict
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.web.app import make_app
from exporter.web.config import WebConfigSource
from exporter.web.guard import ConnectionGuard
from exporter.web.liveness import LIVENESS_ROUTE, add_liveness_route

KEY, SECRET, TOKEN = "guard-key-0001", "guard-secret-0001", "bot-token-0001"
TIMEOUT = 1.0
pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ the pure switch


def test_the_switch_starts_released_arms_on_a_sign_and_lets_go_after_the_timeout():
    switch = Switch(timeout=30)
    assert switch.decide(now=0) is None and not switch.armed and switch.next_decision() is None
    switch.sign_of_life(at=10)
    assert switch.decide(now=10) == "armed" and switch.next_decision() == 40
    switch.sign_of_life(at=5)  # an older sign changes nothing
    assert switch.decide(now=39.9) is None and switch.armed
    assert switch.decide(now=40) == "released" and switch.decide(now=41) is None
    switch.sign_of_life(at=50)
    assert switch.decide(now=50) == "armed"


def test_a_stale_sign_never_arms():
    switch = Switch(timeout=30)
    switch.sign_of_life(at=0)  # e.g. a file last touched long ago
    assert switch.decide(now=31) is None and not switch.armed


# ------------------------------------------------------------------ on the simulator


@asynccontextmanager
async def guarding(
    liveness: GuardianLiveness, web_config: WebConfigSource | None = None, clock: VirtualClock | None = None
):
    """The simulator, a fleet with one guardian-liveness account, and the liveness route on loopback
    (behind the connection guard and ``web_config``, as the exporter serves it, when one is given);
    the fleet and its metrics on ``clock`` when one is given (the simulator keeps the real time)."""
    async with Simulator(time_scale=0.1) as sim:
        sim.add_account(KEY, SECRET)
        account = AccountConfig(
            name="bot",
            api_key=KEY,
            api_secret=Secret(SECRET),
            environment="custom",
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            mode="guardian",
            guardian_products=("DERIVATIVES",),
            ping_interval=0.5,
            pong_timeout=0.25,
            poll_interval=1.0,
            guardian_liveness=liveness,
        )
        if clock is None:
            metrics = Metrics()
            fleet = Fleet(Config(accounts=[account]), metrics)
        else:
            metrics = Metrics(clock=clock.time)
            fleet = Fleet(Config(accounts=[account]), metrics, clock=clock)
        if web_config is None:
            app = make_app(metrics, fleet)
            add_liveness_route(app, fleet.guardian)
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            scheme = "http"
        else:
            guard = ConnectionGuard(config=web_config)
            app = make_app(
                metrics, fleet, web_config=web_config, middlewares=[guard.middleware], bearer_routes=(LIVENESS_ROUTE,)
            )
            add_liveness_route(app, fleet.guardian)
            runner, server = await guard.listen(app, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            scheme = "https" if web_config.current().tls else "http"
        await fleet.start()
        try:
            yield sim, fleet, metrics, f"{scheme}://127.0.0.1:{port}/api/v1/accounts/bot/liveness"
        finally:
            await fleet.stop()
            await runner.cleanup()


@pytest.fixture
async def guarded(session):
    async with guarding(GuardianLiveness("http", TIMEOUT, token=Secret(TOKEN))) as running:
        yield running


def dcp_connections(sim: Simulator) -> list:
    return [c for c in sim.connection_info() if any(t.startswith("dcp.") for t in c.topics)]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def armed(metrics: Metrics) -> bool:
    return value(metrics, "bybit_dcp_guardian_armed", account="bot", product="DERIVATIVES") == 1


def transitions(metrics: Metrics, to: str) -> float | None:
    return value(metrics, "bybit_dcp_guardian_transitions_total", account="bot", to=to)


async def test_the_guardian_holds_dcp_for_a_live_bot_lets_go_when_it_stops_and_rearms(guarded, session):
    sim, fleet, metrics, url = guarded
    order = sim.place_order(KEY, category="linear")
    await eventually(lambda: sim.connection_info(), what="the observer connection")
    assert dcp_connections(sim) == [] and not armed(metrics)  # starts disarmed

    async with session.post(url, headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401
    async with session.post(url) as resp:
        assert resp.status == 401
    assert value(metrics, "bybit_dcp_guardian_liveness_rejected_total", account="bot") == 2
    assert dcp_connections(sim) == []  # a bad token never arms

    last_sign = 0.0

    async def bot(seconds: float) -> None:
        nonlocal last_sign
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            async with session.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 204
            last_sign = time.monotonic()
            await asyncio.sleep(0.2)

    living = asyncio.create_task(bot(3.0))  # three DCP windows
    await eventually(lambda: armed(metrics), what="the guardian to arm")
    await living
    assert sim.account(KEY).orders[order["orderId"]]["orderStatus"] == "New"  # held across the window
    # The observer connection never subscribes dcp.*: the guarded one is separate.
    assert [sorted(c.topics) for c in dcp_connections(sim)] == [["dcp.future"]]
    assert {"order"} in [set(c.topics) for c in sim.connection_info()]

    await eventually(lambda: not dcp_connections(sim), timeout=TIMEOUT + 2, what="the guardian to let go")
    let_go = time.monotonic() - last_sign
    print(f"guardian let-go latency: {let_go:.2f} s after the last sign (timeout {TIMEOUT:g} s)")
    assert let_go <= TIMEOUT + 1.0
    await eventually(
        lambda: value(metrics, "bybit_dcp_triggers_total", account="bot", product="DERIVATIVES") == 1,
        timeout=5,
        what="DCP to fire and be counted",
    )
    assert sim.account(KEY).orders[order["orderId"]]["cancelType"] == "CancelByDCP"
    await eventually(lambda: transitions(metrics, "released") == 1, what="the let-go counted")
    assert value(metrics, "bybit_dcp_ws_connected", account="bot") == 1  # letting go never blinds the exporter

    returning = asyncio.create_task(bot(0.5))
    await eventually(lambda: dcp_connections(sim), what="the guardian to re-arm")
    await returning
    assert transitions(metrics, "armed") == 2


async def test_the_route_knows_only_guardians_with_http_liveness(guarded, session):
    _, _, _, url = guarded
    async with session.post(url.replace("/bot/", "/nobody/"), headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 404


# ------------------------------------------------------------------ the polled sources


async def test_the_file_source_arms_on_a_touch_lets_go_after_the_timeout_and_rearms(tmp_path):
    alive = tmp_path / "alive"
    alive.touch()
    os.utime(alive, (time.time() - 3600, time.time() - 3600))  # touched an hour ago: a dead bot
    async with guarding(GuardianLiveness("file", TIMEOUT, path=str(alive))) as (sim, _, metrics, _url):

        def age() -> float | None:
            return value(metrics, "bybit_dcp_guardian_liveness_age_seconds", account="bot")

        await eventually(lambda: (age() or 0) > 3000, what="the stale file read")
        await eventually(lambda: sim.connection_info(), what="the observer connection")
        assert not armed(metrics) and dcp_connections(sim) == []  # a stale file never arms

        last_touch = 0.0

        async def bot(seconds: float) -> None:
            nonlocal last_touch
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                alive.touch()
                last_touch = time.monotonic()
                await asyncio.sleep(0.1)

        touching = asyncio.create_task(bot(2 * TIMEOUT))
        await eventually(lambda: dcp_connections(sim), what="the guardian to arm on the first touch")
        await touching
        assert armed(metrics) and transitions(metrics, "released") == 0  # held while touched, past the timeout
        await eventually(lambda: not dcp_connections(sim), timeout=TIMEOUT + 2, what="the guardian to let go")
        let_go = time.monotonic() - last_touch
        assert TIMEOUT - 0.1 <= let_go <= TIMEOUT + 1.0, let_go  # timeout after the last touch, not before
        # the socket closes before the switch's change is counted: wait for the count
        await eventually(lambda: transitions(metrics, "released") == 1, what="the let-go counted")

        alive.touch()
        await eventually(lambda: dcp_connections(sim), what="the guardian to re-arm on a new touch")
        assert transitions(metrics, "armed") == 2
        alive.unlink()  # gone: no sign, and the watcher goes on
        await eventually(lambda: transitions(metrics, "released") == 2, timeout=TIMEOUT + 2, what="let go again")


class ScrapedBot:
    """A target Prometheus scrapes: ``bot_alive`` is whatever the test sets."""

    def __init__(self) -> None:
        self.alive = 1

    async def __aenter__(self) -> str:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=f"# TYPE bot_alive gauge\nbot_alive {self.alive}\n")

        app = web.Application()
        app.router.add_get("/metrics", handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


@pytest.mark.e2e  # a real Prometheus
async def test_the_prometheus_source_follows_a_real_query(tmp_path, session):
    """A real Prometheus scrapes the bot's ``bot_alive`` every second; ``bot_alive == 1`` is the
    liveness query: non-empty while the bot says 1, empty once it says 0."""
    timeout = 2.0
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    bot = ScrapedBot()
    async with bot as target:
        prom, prom_url = start_prometheus(tmp_path, rules, targets=[target])
        try:
            liveness = GuardianLiveness("prometheus", timeout, url=prom_url, query="bot_alive == 1")
            async with guarding(liveness) as (sim, _, metrics, _url):
                await eventually(lambda: dcp_connections(sim), timeout=30, what="armed once Prometheus has the series")
                await eventually(lambda: armed(metrics), what="the armed gauge")

                bot.alive = 0
                await eventually(
                    lambda: prometheus_query(session, prom_url, "bot_alive == 0"),
                    timeout=15,
                    what="Prometheus to scrape the 0",
                )
                assert await prometheus_query(session, prom_url, "bot_alive == 1") == []  # the query is empty now
                await eventually(lambda: not dcp_connections(sim), timeout=timeout + 6, what="the guardian to let go")
                await eventually(lambda: transitions(metrics, "released") == 1, what="the let-go counted")
                assert not armed(metrics)

                bot.alive = 1
                await eventually(lambda: dcp_connections(sim), timeout=15, what="the guardian to re-arm")
                assert transitions(metrics, "armed") == 2
        finally:
            stop_process(prom)


# ------------------------------------------------------------------ odd answers: a verdict each, never a crash

GOOD = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]}}
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


def vector_of(text: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, text]}]}}


# (name, HTTP status, body, the reason counted or None for a clear "not alive")
ODD_ANSWERS = [
    ("data is a list", 200, {"status": "success", "data": []}, "bad_body"),
    ("a scalar result", 200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}, "not_vector"),
    ("HTTP 500 with a success body", 500, GOOD, "http_status"),
    ("a NaN value", 200, vector_of("NaN"), "bad_value"),
    ("a +Inf value", 200, vector_of("+Inf"), "bad_value"),
    ("a 0 value", 200, vector_of("0"), None),
    ("not JSON", 200, b"<html>proxy error</html>", "not_json"),
    ("a failed query", 200, {"status": "error", "errorType": "bad_data", "error": "parse error"}, "query_failed"),
    ("a JSON list", 200, [GOOD], "bad_body"),
]


def encoded(body: object) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@pytest.mark.parametrize(("name", "status", "body", "reason"), ODD_ANSWERS, ids=[a[0] for a in ODD_ANSWERS])
def test_an_odd_prometheus_answer_is_never_alive(name, status, body, reason):
    verdict = prometheus_verdict(status, encoded(body), now=100.0)
    assert not isinstance(verdict, Alive)
    if reason is None:
        assert isinstance(verdict, NotAlive)
    else:
        assert isinstance(verdict, Unknown) and verdict.reason == reason


def test_only_a_2xx_vector_with_a_finite_value_above_0_is_alive():
    assert prometheus_verdict(200, encoded(GOOD), now=100.0) == Alive(100.0)
    assert prometheus_verdict(204, encoded(vector_of("0.5")), now=100.0) == Alive(100.0)
    mixed = vector_of("NaN")
    mixed["data"]["result"].append({"metric": {}, "value": [1, "2"]})
    assert prometheus_verdict(200, encoded(mixed), now=100.0) == Alive(100.0)  # one live sample is enough
    assert isinstance(prometheus_verdict(200, encoded(EMPTY), now=100.0), NotAlive)
    assert isinstance(prometheus_verdict(200, encoded(vector_of("-1")), now=100.0), NotAlive)


class FakePrometheus:
    """``/api/v1/query`` on loopback answering whatever the test sets; counts the queries it served."""

    def __init__(self) -> None:
        self.status, self.body = 200, encoded(GOOD)
        self.served = 0

    def answer(self, status: int, body: object) -> None:
        self.status, self.body = status, encoded(body)

    async def __aenter__(self) -> str:
        async def query(request: web.Request) -> web.Response:
            self.served += 1
            return web.Response(status=self.status, body=self.body, content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/v1/query", query)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


def liveness_errors(metrics: Metrics, reason: str) -> float | None:
    return value(metrics, "bybit_dcp_guardian_liveness_errors_total", account="bot", reason=reason)


async def test_each_odd_prometheus_answer_is_counted_never_arms_and_the_next_good_one_arms():
    """Each odd answer, served for real: the watcher keeps asking (it used to die on the first
    ``data: []``), counts the reason, holds nothing; then a good answer arms and an empty one lets go."""
    timeout = 0.3
    prometheus = FakePrometheus()
    async with prometheus as url:
        prometheus.answer(200, EMPTY)
        async with guarding(GuardianLiveness("prometheus", timeout, url=url, query="bot_alive")) as (sim, _, m, _u):
            await eventually(lambda: sim.connection_info(), what="the observer connection")
            for name, status, body, reason in ODD_ANSWERS:
                before = liveness_errors(m, reason) if reason else 0
                prometheus.answer(status, body)
                served = prometheus.served
                await eventually(lambda: prometheus.served >= served + 3, what=f"queries go on after {name}")
                assert not armed(m) and dcp_connections(sim) == [], name
                if reason:
                    assert liveness_errors(m, reason) > before, name
                prometheus.answer(200, GOOD)
                await eventually(lambda: armed(m), what=f"a good answer after {name} to arm")
                prometheus.answer(200, EMPTY)
                await eventually(lambda: not dcp_connections(sim), timeout=timeout + 3, what=f"let go after {name}")
                await eventually(lambda: not armed(m), what="the armed gauge down")
            assert transitions(m, "armed") == len(ODD_ANSWERS)


async def test_a_watcher_that_raises_or_ends_is_logged_counted_and_restarted(caplog, session):
    clock = VirtualClock()
    account = prometheus_guardian("http://127.0.0.1:1", "x", key=KEY, secret=SECRET)
    metrics = Metrics()
    guardian = Guardian(account, metrics, session, clock=clock)
    runs = 0
    forever = asyncio.Event()

    async def watch() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("unforeseen")
        if runs == 2:
            return
        await forever.wait()

    task = asyncio.create_task(guardian._supervised(watch))
    try:
        await eventually(lambda: runs == 1, what="the first run")
        await clock.advance(WATCHER_RESTART_DELAY)
        await eventually(lambda: runs == 2, what="the restart after the exception")
        await clock.advance(WATCHER_RESTART_DELAY)
        await eventually(lambda: runs == 3, what="the restart after the watcher ended")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    failed = [r for r in caplog.records if r.getMessage() == "liveness watcher failed; restarting it"]
    assert len(failed) == 1 and failed[0].exc_info is not None  # with its traceback
    assert [r for r in caplog.records if r.getMessage() == "liveness watcher ended unexpectedly; restarting it"]
    assert liveness_errors(metrics, "exception") == 1


# ------------------------------------------------------------------ a sign's time is bounded by now


def test_a_future_file_time_counts_as_now_once_and_is_suspect():
    now = 1_000.0
    hour_ahead = int((now + 3600) * 1e9)
    first = file_verdict(hour_ahead, None, now)
    assert first == Alive(now, suspect="future_time")
    assert isinstance(file_verdict(hour_ahead, hour_ahead, now + 10), NotAlive)  # the same stamp: no new sign
    assert isinstance(file_verdict(hour_ahead, hour_ahead, now + 3700), NotAlive)  # not even once the clock passes it
    assert file_verdict(int((now + 0.5) * 1e9), None, now) == Alive(now)  # a coarse file-system timestamp: not suspect
    assert file_verdict(int((now - 5) * 1e9), None, now) == Alive(now - 5)


async def test_a_liveness_file_touched_an_hour_ahead_holds_dcp_off_for_one_timeout_only(tmp_path):
    """As ``touch -d '+1 hour'``: it used to hold DCP off for the hour, the age gauge reading 0.

    On a virtual clock: in real time the guarded connection lived one 1 s timeout from the first
    look at the file, and a busy machine could open it too late to be seen armed at all."""
    alive = tmp_path / "alive"
    alive.touch()
    ahead = time.time() + 3600
    os.utime(alive, (ahead, ahead))
    clock = VirtualClock()
    async with guarding(GuardianLiveness("file", TIMEOUT, path=str(alive)), clock=clock) as (sim, _, metrics, _url):
        await eventually(lambda: dcp_connections(sim), what="armed: the touch counts, as of now")
        assert liveness_errors(metrics, "future_time") == 1
        await clock.advance(TIMEOUT / 2)
        assert dcp_connections(sim) and not transitions(metrics, "released")  # held, for now
        await clock.advance(TIMEOUT / 2)
        await eventually(lambda: not dcp_connections(sim), what="let go after one timeout")
        assert transitions(metrics, "released") == 1
        age = value(metrics, "bybit_dcp_guardian_liveness_age_seconds", account="bot")
        assert age is not None and age >= TIMEOUT - 0.1  # the real age since it was seen, not 0
        await clock.advance(3 * TIMEOUT)  # a dozen more looks at the file
        assert not dcp_connections(sim) and transitions(metrics, "released") == 1  # not re-armed
        assert transitions(metrics, "armed") == 1 and liveness_errors(metrics, "future_time") == 1


# ------------------------------------------------------------------ http liveness behind TLS and basic auth


async def test_http_liveness_works_behind_a_tls_and_basic_auth_web_config(tmp_path, session):
    """One request has one Authorization header: the liveness route takes the bot's bearer token
    alone, every other path still needs the basic-auth password, and TLS covers both."""
    import base64
    import ssl

    from tls_material import bcrypt_hash, make_pki

    pki = make_pki(tmp_path)
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(
        f"tls_server_config: {{cert_file: {pki.server_cert.name}, key_file: {pki.server_key.name}}}\n"
        f"basic_auth_users: {{prometheus: '{bcrypt_hash('scrape-pass')}'}}\n"
    )
    tls = ssl.create_default_context(cafile=str(pki.ca))
    scrape = "Basic " + base64.b64encode(b"prometheus:scrape-pass").decode()
    liveness = GuardianLiveness("http", TIMEOUT, token=Secret(TOKEN))
    async with guarding(liveness, WebConfigSource(str(web_yml))) as (sim, _, metrics, url):
        assert url.startswith("https://")
        metrics_url = url.replace("/api/v1/accounts/bot/liveness", "/metrics")
        async with session.get(metrics_url, ssl=tls) as resp:
            assert resp.status == 401  # basic auth still guards the rest
        async with session.get(metrics_url, ssl=tls, headers={"Authorization": scrape}) as resp:
            assert resp.status == 200
        async with session.post(url, ssl=tls, headers={"Authorization": scrape}) as resp:
            assert resp.status == 401  # the scraper's password is no bot token
        async with session.post(url, ssl=tls, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 204
        await eventually(lambda: dcp_connections(sim), what="the guardian to arm on a sign sent over TLS")
        assert value(metrics, "bybit_dcp_guardian_liveness_rejected_total", account="bot") == 1


async def test_a_guarded_connection_that_ends_while_the_bot_lives_is_opened_again(guarded, session, caplog):
    sim, fleet, metrics, url = guarded
    stop = asyncio.Event()

    async def bot() -> None:
        while not stop.is_set():
            async with session.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 204
            await asyncio.sleep(0.2)

    living = asyncio.create_task(bot())
    try:
        await eventually(lambda: dcp_connections(sim), what="armed")
        guardian = fleet.guardian("bot")
        first = guardian._held
        first.cancel()  # the guarded connection's task ends, as a bug or a crash would end it
        await eventually(lambda: guardian._held is not first and dcp_connections(sim), what="opened again")
        assert transitions(metrics, "armed") == 1 and transitions(metrics, "released") == 0  # no let-go meanwhile
        assert any(r.getMessage().startswith("guarded connection ended while the bot is alive") for r in caplog.records)
    finally:
        stop.set()
        await living
