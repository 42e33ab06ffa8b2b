"""The whole exporter (supervisors, stream, poller, backfill, enforcer, web) against the simulator.

Everything runs over loopback with short intervals; waits poll a condition with a bound.
"""

from __future__ import annotations

import logging
import random
import time

import aiohttp
from account_harness import KEY, account, protected_client, running, subscribe_topics
from helpers import eventually
from status_page import article, cells

from exporter.bybit.pacing import EQUAL_JITTER, RESTART_BACKOFF_MAX, RESTART_BACKOFF_MIN, backoff_delay
from exporter.metrics import Metrics
from exporter.monitor.account import AccountSupervisor
from exporter.monitor.parts import stream_topics
from exporter.secrets import Secret


def restart_delay(failures, rng):
    """The supervisor's wait before restarting a part after ``failures`` failures in a row."""
    return backoff_delay(failures - 1, RESTART_BACKOFF_MIN, RESTART_BACKOFF_MAX, rng, floor=EQUAL_JITTER)


def test_restart_delay_is_capped_for_any_failure_count():
    rng = random.Random(3)
    assert 0.5 <= restart_delay(1, rng) <= 1.0
    for failures in (7, 1025, 10_000, 10**9):  # 2.0 ** 1024 would overflow a float
        assert 0.5 * RESTART_BACKOFF_MAX <= restart_delay(failures, rng) <= RESTART_BACKOFF_MAX


# ---------------------------------------------------------------------------------------------


async def test_metrics_present_after_start(sim):
    async with running(account(sim, desired_windows={"DERIVATIVES": 10}, reassert="dry-run")) as r:
        assert not r.fleet.ready
        async with r.session.get(r.base_url + "/readyz") as resp:
            assert resp.status in (200, 503)
        await eventually(lambda: r.fleet.ready, what="first poll")
        async with r.session.get(r.base_url + "/readyz") as resp:
            assert resp.status == 200
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1, what="stream up")
        await eventually(lambda: r.local("bybit_dcp_ws_ping_rtt_seconds_count", account="a"), what="a pong")
        s = await r.scrape()

        def v(name, **labels):
            return s.get((name, frozenset({"account": "a", **labels}.items())))

        assert v("bybit_dcp_up") == 1
        assert v("bybit_dcp_enabled", product="DERIVATIVES") == 1
        assert v("bybit_dcp_enabled", product="SPOT") == 1
        assert v("bybit_dcp_enabled", product="OPTIONS") == 0
        assert v("bybit_dcp_window_seconds", product="DERIVATIVES") == 10
        assert v("bybit_dcp_window_seconds", product="OPTIONS") is None
        assert v("bybit_dcp_desired_window_seconds", product="DERIVATIVES") == 10
        assert v("bybit_dcp_window_drift", product="DERIVATIVES") == 0
        assert abs(v("bybit_dcp_last_poll_success_timestamp_seconds") - time.time()) < 5
        assert v("bybit_dcp_account_info", environment="simulator", mode="observer") == 1
        assert v("bybit_dcp_ws_connected") == 1
        assert v("bybit_dcp_ws_ping_gap_seconds") < 5
        assert v("bybit_dcp_api_requests_total", endpoint="query_dcp_info") >= 1
        assert v("bybit_dcp_cancelled_orders_total", category="linear") == 0
        assert v("bybit_dcp_triggers_total", product="DERIVATIVES") == 0
        async with r.session.get(r.base_url + "/") as resp:
            page = await resp.text()
        assert cells(article(page, "a"), "DERIVATIVES")[:4] == ["DERIVATIVES", "on", "10 s", "10 s"]


async def test_window_changed_behind_our_back_shows_at_next_poll(sim):
    async with running(account(sim)) as r:
        await eventually(lambda: r.local("bybit_dcp_window_seconds", account="a", product="SPOT") == 10)
        sim.set_dcp(KEY, "SPOT", 42)
        await eventually(lambda: r.local("bybit_dcp_window_seconds", account="a", product="SPOT") == 42, timeout=3)
        sim.set_dcp(KEY, "SPOT", None)
        await eventually(lambda: r.local("bybit_dcp_enabled", account="a", product="SPOT") == 0, timeout=3)
        assert await r.value("bybit_dcp_window_seconds", account="a", product="SPOT") is None
        sim.set_dcp(KEY, "OPTIONS", 7)
        await eventually(lambda: r.local("bybit_dcp_window_seconds", account="a", product="OPTIONS") == 7, timeout=3)
        assert r.local("bybit_dcp_enabled", account="a", product="OPTIONS") == 1


async def test_live_dcp_trigger_counted_exactly(sim):
    async with running(account(sim)) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1)
        for _ in range(3):
            sim.place_order(KEY, category="linear")
        sim.place_order(KEY, category="inverse")
        sim.place_order(KEY, category="spot")  # SPOT is not protected by this bot: stays open
        async with protected_client(sim, KEY, "dcp.future"):
            pass  # the bot dies
        await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")
        await eventually(
            lambda: r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 3, timeout=5
        )
        await eventually(lambda: r.local("bybit_dcp_cancelled_orders_total", account="a", category="inverse") == 1)
        # A reconnect and its backfill re-read the same orders: still counted once.
        backfills = r.fleet.supervisors["a"].backfill.gaps_read
        sim.close_connections(KEY)
        await eventually(lambda: r.fleet.supervisors["a"].backfill.gaps_read > backfills, timeout=10, what="a backfill")
        s = await r.scrape()
        assert s[("bybit_dcp_cancelled_orders_total", frozenset({"account": "a", "category": "linear"}.items()))] == 3
        assert s[("bybit_dcp_cancelled_orders_total", frozenset({"account": "a", "category": "inverse"}.items()))] == 1
        assert s[("bybit_dcp_cancelled_orders_total", frozenset({"account": "a", "category": "spot"}.items()))] == 0
        assert s[("bybit_dcp_triggers_total", frozenset({"account": "a", "product": "DERIVATIVES"}.items()))] == 1
        assert s[("bybit_dcp_triggers_total", frozenset({"account": "a", "product": "SPOT"}.items()))] == 0
        fired_at = sim.account(KEY).triggers[0]["time"]
        last = s[
            ("bybit_dcp_last_trigger_timestamp_seconds", frozenset({"account": "a", "product": "DERIVATIVES"}.items()))
        ]
        assert abs(last - fired_at) < 0.01


async def test_trigger_while_our_stream_was_down_is_backfilled_once(sim):
    # A slow heartbeat so the stall is noticed only after the trigger has fired.
    async with running(account(sim, ping_interval=2.0, pong_timeout=1.0)) as r:
        sup = r.fleet.supervisors["a"]
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1)
        for _ in range(4):
            sim.place_order(KEY, category="linear")
        sim.place_order(KEY, category="option")
        async with protected_client(sim, KEY, "dcp.future"):
            sim.stall(KEY, True)  # our connection (and the bot's) go silent; nothing is pushed
        await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")
        # The trigger happened while our stream was still on the silent connection.
        assert r.local("bybit_dcp_ws_pong_timeouts_total", account="a") == 0
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 0
        # Pong timeout -> reconnect (new connections are not stalled) -> backfill finds the cancels.
        await eventually(lambda: sup.backfill.gaps_read >= 1, timeout=15, what="the backfill after reconnecting")
        assert r.local("bybit_dcp_ws_reconnects_total", account="a", reason="pong_timeout") >= 1
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 4
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="option") == 0
        assert r.local("bybit_dcp_triggers_total", account="a", product="DERIVATIVES") == 1
        # Another reconnect overlaps the same history: nothing is counted twice.
        sim.close_connections(KEY)
        await eventually(lambda: sup.backfill.gaps_read >= 2, timeout=15, what="a second backfill")
        assert r.local("bybit_dcp_cancelled_orders_total", account="a", category="linear") == 4
        assert r.local("bybit_dcp_triggers_total", account="a", product="DERIVATIVES") == 1


async def test_observer_never_subscribes_dcp(sim):
    async with running(account(sim)) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1)
        sim.close_connections(KEY)  # and not after a reconnect either
        await eventually(lambda: r.local("bybit_dcp_ws_reconnects_total", account="a", reason="closed") >= 1)
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="a") == 1)
        assert subscribe_topics(sim, KEY) == ["order", "order"]
        assert sim.account(KEY).subscribed_topics() == {"order"}
        for product in ("SPOT", "DERIVATIVES", "OPTIONS"):
            assert await r.value("bybit_dcp_ws_dcp_subscribed", account="a", product=product) == 0


async def test_guardian_subscribes_its_products(sim):
    config = account(sim, mode="guardian", guardian_products=("DERIVATIVES",))
    assert stream_topics(config) == ("order", "dcp.future")
    async with running(config) as r:
        await eventually(lambda: r.local("bybit_dcp_ws_dcp_subscribed", account="a", product="DERIVATIVES") == 1)
        assert sim.account(KEY).subscribed_topics() == {"order", "dcp.future"}
        assert await r.value("bybit_dcp_ws_dcp_subscribed", account="a", product="SPOT") == 0
        assert await r.value("bybit_dcp_account_info", account="a", environment="simulator", mode="guardian") == 1


async def test_wrong_secret_is_visible_and_harmless_to_other_accounts(sim, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "definitely-the-wrong-secret-9876"
    sim.add_account("good-key")
    bad = account(sim, name="bad", api_secret=Secret(wrong))
    good = account(sim, key="good-key", name="good")
    async with running(bad, good) as r:
        await eventually(
            lambda: (
                (r.local("bybit_dcp_api_errors_total", account="bad", endpoint="query_dcp_info", code="10004") or 0)
                >= 2
            ),
            what="repeated 10004 errors",
        )
        await eventually(lambda: r.local("bybit_dcp_up", account="good") == 1)
        await eventually(
            lambda: r.local("bybit_dcp_ws_reconnects_total", account="bad", reason="auth_failed"),
            what="ws auth failure",
        )
        assert r.fleet.ready
        s = await r.scrape()
        assert s[("bybit_dcp_up", frozenset({"account": "bad"}.items()))] == 0
        assert s[("bybit_dcp_ws_connected", frozenset({"account": "bad"}.items()))] == 0
        await eventually(lambda: r.local("bybit_dcp_ws_connected", account="good") == 1)
        assert all(not t.done() for t in r.fleet._tasks.values())
    assert any("10004" in (getattr(rec, "code", "") or "") for rec in caplog.records)
    for rec in caplog.records:
        text = rec.getMessage() + " " + " ".join(str(v) for v in vars(rec).values())
        assert wrong not in text
        assert sim.account("good-key").api_secret not in text
    assert wrong not in caplog.text


async def test_enforce_restores_a_changed_window(sim):
    config = account(sim, desired_windows={"SPOT": 10}, reassert="enforce", settle_seconds=0.2)
    async with running(config) as r:
        await eventually(lambda: r.local("bybit_dcp_up", account="a") == 1)
        sim.set_dcp(KEY, "SPOT", 30)
        await eventually(lambda: sim.account(KEY).set_dcp_calls, timeout=5, what="a set")
        assert sim.account(KEY).set_dcp_calls[0] == ("SPOT", 10)
        await eventually(lambda: r.local("bybit_dcp_window_seconds", account="a", product="SPOT") == 10, timeout=5)
        await eventually(lambda: r.local("bybit_dcp_window_drift", account="a", product="SPOT") == 0, timeout=5)
        assert r.local("bybit_dcp_reassert_attempts_total", account="a", product="SPOT") >= 1


async def test_dry_run_reports_drift_and_sends_nothing(sim):
    async with running(account(sim, desired_windows={"SPOT": 20}, reassert="dry-run")) as r:
        await eventually(lambda: r.local("bybit_dcp_window_drift", account="a", product="SPOT") == 1)
        polls = lambda: r.local("bybit_dcp_api_requests_total", account="a", endpoint="query_dcp_info")
        seen = polls()
        await eventually(lambda: polls() >= seen + 2, timeout=5, what="two more polls")
        assert sim.account(KEY).set_dcp_calls == []
        assert [c for c in sim.account(KEY).rest_calls if c["method"] == "POST"] == []


async def test_failed_part_restarts(sim, monkeypatch):
    async with running(account(sim)) as r:
        sup = r.fleet.supervisors["a"]
        await eventually(lambda: r.local("bybit_dcp_up", account="a") == 1)
        real = sup.rest.query_dcp_info
        failures = []

        async def broken():
            failures.append(1)
            raise RuntimeError("a bug")

        monkeypatch.setattr(sup.rest, "query_dcp_info", broken)
        await eventually(lambda: failures, what="the broken poll")
        assert r.local("bybit_dcp_up", account="a") == 0
        monkeypatch.setattr(sup.rest, "query_dcp_info", real)
        await eventually(lambda: r.local("bybit_dcp_up", account="a") == 1, timeout=5, what="the restarted poller")
        assert r.local("bybit_dcp_ws_connected", account="a") == 1


async def test_refused_key_on_poll_blocks_reassertion(sim):
    config = account(
        sim,
        api_secret=Secret("another-wrong-secret-123"),
        desired_windows={"SPOT": 10},
        reassert="enforce",
        settle_seconds=0.2,
    )
    async with running(config) as r:
        await eventually(
            lambda: r.local("bybit_dcp_reassert_blocked", account="a", product="SPOT", reason="credentials") == 1,
            what="blocked",
        )
        assert r.fleet.supervisors["a"].enforcer.blocked
        assert sim.account(KEY).set_dcp_calls == []


async def test_unmatched_ip_on_poll_blocks_reassertion_like_a_set_would(sim):
    sim.force_error("/v5/account/query-dcp-info", 10010, count=None)
    config = account(sim, desired_windows={"SPOT": 10}, reassert="enforce", settle_seconds=0.2)
    async with running(config) as r:
        await eventually(
            lambda: r.local("bybit_dcp_reassert_blocked", account="a", product="SPOT", reason="credentials") == 1,
            what="blocked",
        )
        assert r.fleet.supervisors["a"].enforcer.core.blocked_code == "10010"
        assert sim.account(KEY).set_dcp_calls == []


async def test_backfill_pages_are_bounded_and_range_clamped(sim, caplog):
    t0 = time.time()
    for _ in range(120):
        sim.place_order(KEY, category="linear")
    async with protected_client(sim, KEY, "dcp.future"):
        pass
    await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        sup = AccountSupervisor(account(sim), metrics, session, backfill_max_pages=2)
        sim.force_error("/v5/order/realtime", 10016, count=None)  # order history alone
        assert await sup.backfill.run(t0 - 3 * 24 * 3600, time.time()) == 100  # 2 pages of 50
        sim.clear_errors()
        assert (
            metrics.registry.get_sample_value(
                "bybit_dcp_cancelled_orders_total", {"account": "a", "category": "linear"}
            )
            == 100
        )
        assert "page limit" in caplog.text
        history = [c for c in sim.account(KEY).rest_calls if c["path"] == "/v5/order/history"]
        assert {c["params"]["category"] for c in history} == {"spot", "linear", "inverse", "option"}
        for call in history:
            span = int(call["params"]["endTime"]) - int(call["params"]["startTime"])
            assert span <= 24 * 3600 * 1000
        # A second, unbounded pass finds the rest (history and the recent closed orders both
        # bring all 120); nothing is counted twice.
        sup.backfill.max_pages = 20
        assert await sup.backfill.run(t0 - 60, time.time()) >= 240
        assert (
            metrics.registry.get_sample_value(
                "bybit_dcp_cancelled_orders_total", {"account": "a", "category": "linear"}
            )
            == 120
        )
        assert (
            metrics.registry.get_sample_value("bybit_dcp_triggers_total", {"account": "a", "product": "DERIVATIVES"})
            == 1
        )
