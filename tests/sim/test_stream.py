"""Private stream: reconnect policy (pure) and the real client against the simulator on loopback."""

import asyncio
import json
import logging
import random
import re
import time

import pytest
from helpers import ShiftedClock, eventually, free_port
from virtual_clock import VirtualClock, run_until, settle

from exporter.bybit.pacing import EQUAL_JITTER, ConnectionBudget, backoff_delay
from exporter.bybit.stream import PrivateStream, StreamConfig
from exporter.metrics import Metrics
from exporter.monitor.stream_metrics import StreamMetrics
from exporter.runtime.clock import SYSTEM_CLOCK, Clock
from exporter.secrets import Secret
from exporter.simulator import Simulator

KEY = "streamkey01"
SECRET = "streamsecret-do-not-log-0123456789"
ACCOUNT = "desk-a"


# ---- pure: reconnect policy ---------------------------------------------------------------


def test_backoff_is_full_jitter_exponential_and_capped():
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(60.0, 1.0 * 2**attempt)
        samples = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > 0.8 * ceiling  # the whole range is used (full jitter)
        assert min(samples) < 0.2 * ceiling
    assert backoff_delay(10_000, 1.0, 60.0, rng) <= 60.0  # no overflow for huge attempt counts


def test_auth_backoff_is_longer_and_never_near_zero():
    rng = random.Random(1)
    for attempt in range(8):
        ceiling = min(300.0, 10.0 * 2**attempt)
        for _ in range(100):
            d = backoff_delay(attempt, 10.0, 300.0, rng, floor=EQUAL_JITTER)
            assert 0.5 * ceiling <= d <= ceiling


def test_connection_budget_never_exceeds_limit_per_period():
    budget = ConnectionBudget(limit=500, period=300.0, burst=100)
    # 2,000 connections wanted at the same instant (e.g. 2,000 accounts restarting)
    starts = sorted(budget.reserve("stream.bybit.com", 0.0) for _ in range(2000))
    assert starts[:100] == [0.0] * 100  # a burst goes through at once
    assert starts[100] > 0.0
    # any 300 s window holds at most 500 openings
    for i, s in enumerate(starts):
        j = i
        while j < len(starts) and starts[j] < s + 300.0:
            j += 1
        assert j - i <= 500


def test_connection_budget_is_per_host_and_refills():
    budget = ConnectionBudget(limit=10, period=10.0, burst=2, pace=0.8)
    assert budget.reserve("a", 0.0) == 0.0
    assert budget.reserve("a", 0.0) == 0.0
    assert budget.reserve("a", 0.0) == pytest.approx(1.25)
    assert budget.reserve("b", 0.0) == 0.0
    assert budget.reserve("a", 100.0) == 0.0  # paced tokens came back (capped at the burst)


def test_config_repr_hides_credentials():
    cfg = StreamConfig("ws://x", "key123", Secret("s3cr3t"), ("order",))
    assert "s3cr3t" not in repr(cfg) and "key123" not in repr(cfg)


# ---- against the simulator --------------------------------------------------------------------


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


async def until(cond, timeout=8.0, what="condition"):
    await eventually(cond, timeout, 0.01, what)


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET)
        yield s


class Harness:
    def __init__(self, url, topics=("order",), secret=SECRET, clock=SYSTEM_CLOCK, **cfg):
        self.metrics = Metrics()
        self.metrics.add_account(ACCOUNT, environment="test", mode="observer")
        self.orders: list[dict] = []
        self.reconnected: list[tuple[float, float]] = []
        params = dict(
            ping_interval=0.3,
            pong_timeout=1.2,
            backoff_base=0.05,
            backoff_cap=0.2,
            auth_backoff_base=0.1,
            auth_backoff_cap=0.2,
            handshake_timeout=2.0,
            close_timeout=0.5,
        )
        params.update(cfg)
        self.config = StreamConfig(url, KEY, Secret(secret), tuple(topics), **params)
        self.stream = PrivateStream(
            ACCOUNT,
            self.config,
            StreamMetrics(self.metrics, ACCOUNT),
            on_orders=self._orders,
            on_reconnected=self._reconnected,
            rng=random.Random(3),
            budget=ConnectionBudget(),
            clock=clock,
        )
        self.task: asyncio.Task | None = None

    async def _orders(self, orders):
        self.orders.extend(orders)

    def _reconnected(self, down, up):
        self.reconnected.append((down, up))

    def value(self, name, **labels):
        return sample(self.metrics, name, **labels)

    def reconnects(self, reason):
        return self.value("bybit_dcp_ws_reconnects_total", reason=reason)

    def rtt_count(self):
        return self.value("bybit_dcp_ws_ping_rtt_seconds_count")

    async def __aenter__(self):
        self.task = asyncio.create_task(self.stream.run())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_auth_subscribe_ping_then_connected_with_rtt(sim):
    async with Harness(sim.ws_url + "?max_active_time=30s") as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1 and h.rtt_count() >= 2, what="connected + 2 pongs")
        assert h.stream.connected
        frames = [f for _, f in sim.account(KEY).ws_frames]
        assert [f["op"] for f in frames[:3]] == ["auth", "subscribe", "ping"]
        auth = frames[0]
        assert auth["args"][0] == KEY and auth["args"][1] > time.time() * 1000  # expires in the future
        assert frames[1]["args"] == ["order"]
        assert len({f["req_id"] for f in frames}) == len(frames)  # every request has its own req_id
        assert 0 < h.value("bybit_dcp_ws_ping_rtt_seconds_sum") / h.rtt_count() < 0.05
        assert abs(h.value("bybit_dcp_ws_last_pong_timestamp_seconds") - time.time()) < 1.0
        assert 0 <= h.value("bybit_dcp_ws_ping_gap_seconds") < 1.0
        skew = h.stream.heartbeat.last_skew
        assert skew is not None and abs(skew) < 0.1
        assert h.value("bybit_dcp_ws_dcp_subscribed", product="DERIVATIVES") == 0
    assert h.value("bybit_dcp_ws_connected") == 0  # cancelled: down


async def test_wall_clock_step_does_not_stall_the_heartbeat(sim):
    offset = [0.0]
    h = Harness(sim.ws_url, ping_interval=0.15, clock=ShiftedClock(lambda: time.time() + offset[0]))
    async with h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1 and h.rtt_count() >= 1, what="first pong")
        offset[0] = -3600.0  # the wall clock is stepped back an hour
        seen = h.rtt_count()
        await until(lambda: h.rtt_count() >= seen + 3, what="pings on schedule after the step")
        assert not h.reconnects("pong_timeout")
        assert 0 < h.value("bybit_dcp_ws_ping_rtt_seconds_sum") / h.rtt_count() < 0.05
        assert abs(h.value("bybit_dcp_ws_last_pong_timestamp_seconds") - (time.time() - 3600)) < 1.0


async def test_pong_latency_shows_in_rtt_histogram(sim):
    sim.set_pong_latency(KEY, 0.05)
    async with Harness(sim.ws_url, ping_interval=0.15) as h:
        await until(lambda: (h.rtt_count() or 0) >= 5, what="5 pongs")
        mean = h.value("bybit_dcp_ws_ping_rtt_seconds_sum") / h.rtt_count()
        assert mean == pytest.approx(0.05, abs=0.005)
        assert h.value("bybit_dcp_ws_ping_rtt_seconds_bucket", le="0.025") == 0


async def test_stall_gives_pong_timeout_reconnect_and_backfill_interval(sim):
    """On a virtual clock: the stall is found exactly pong_timeout after the unanswered ping."""
    clock = VirtualClock()
    async with Harness(sim.ws_url, clock=clock) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1 and h.rtt_count() >= 1, what="first pong")
        stalled_at = clock.time()
        sim.stall(KEY, True)
        pings = lambda: sum(1 for _, f in sim.account(KEY).ws_frames if f.get("op") == "ping")
        sent = pings()
        await run_until(clock, lambda: pings() > sent, "unanswered ping", step=0.01)
        unanswered_at = clock.monotonic()
        await settle()
        await clock.advance(h.config.pong_timeout - 0.051)  # just before its deadline (within one step)
        await settle()
        assert not h.reconnects("pong_timeout") and h.stream.connected
        await run_until(clock, lambda: h.reconnects("pong_timeout") == 1, "pong timeout")
        assert clock.monotonic() - unanswered_at == pytest.approx(h.config.pong_timeout, abs=0.051)
        assert h.value("bybit_dcp_ws_pong_timeouts_total") == 1
        await run_until(clock, lambda: h.value("bybit_dcp_ws_connected") == 1 and h.reconnected, "reconnect")
        down, up = h.reconnected[0]
        assert down <= stalled_at + 0.05  # the last frame read came before the stall
        assert up - down >= h.config.pong_timeout * 0.9
        assert up <= clock.time()
        # the pong after the reconnect is recorded as one long heartbeat gap (across the reconnect)
        count_before = h.rtt_count()
        await run_until(clock, lambda: h.rtt_count() > count_before, "pong after reconnect")
        total = h.value("bybit_dcp_ws_heartbeat_gap_seconds_count")
        assert h.value("bybit_dcp_ws_heartbeat_gap_seconds_bucket", le="1.0") < total
        assert h.reconnects("closed") == 0 and h.reconnects("error") == 0


async def test_server_close_is_counted_as_closed_and_resubscribes(sim):
    async with Harness(sim.ws_url) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
        assert sim.close_connections(KEY, 1000, "bye") == 1
        await until(lambda: h.reconnects("closed") == 1, what="close counted")
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1 and len(h.reconnected) == 1, what="back up")
        subs = [f for _, f in sim.account(KEY).ws_frames if f.get("op") == "subscribe"]
        assert len(subs) == 2 and all(f["args"] == ["order"] for f in subs)
        # observer mode: no dcp.* subscription ever sent, across the reconnect too
        for _, frame in sim.account(KEY).ws_frames:
            assert not any(str(a).startswith("dcp") for a in frame.get("args", []) if frame.get("op") == "subscribe")
        assert sim.account(KEY).subscribed_topics() == {"order"}


async def test_cancel_right_after_a_reconnect_stops_the_stream(sim):
    reconnected = asyncio.Event()
    h = Harness(sim.ws_url)
    h.stream.on_reconnected = lambda down, up: reconnected.set()
    task = asyncio.create_task(h.stream.run())
    await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
    assert sim.close_connections(KEY, 1000, "bye") == 1
    await asyncio.wait_for(reconnected.wait(), 8.0)
    # Cancelled just as the first ping of the new connection is answered: run() must end.
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert done == {task} and task.cancelled()


async def test_cancelled_stream_waits_for_its_reconnect_callback(sim):
    started, finished = asyncio.Event(), []

    async def slow_backfill(down, up):
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.append((down, up))

    h = Harness(sim.ws_url)
    h.stream.on_reconnected = slow_backfill
    task = asyncio.create_task(h.stream.run())
    await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
    assert sim.close_connections(KEY, 1000, "bye") == 1
    await asyncio.wait_for(started.wait(), 8.0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert done == {task}
    assert len(finished) == 1  # the callback was cancelled and had finished before run() returned


async def test_malformed_frames_counted_logged_once_and_connection_stays_up(sim, caplog):
    caplog.set_level(logging.WARNING, logger="exporter.stream")
    async with Harness(sim.ws_url) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
        sim.send_malformed(KEY, "this is {not json")
        sim.send_malformed(KEY, "still not json")
        sim.send_malformed(KEY, json.dumps({"topic": "wallet", "data": []}))
        await until(lambda: h.value("bybit_dcp_ws_invalid_messages_total") == 3, what="3 invalid frames")
        before = h.rtt_count()
        await until(lambda: h.rtt_count() > before, what="heartbeat goes on")
        assert h.value("bybit_dcp_ws_connected") == 1
        assert sum(h.reconnects(r) for r in ("closed", "pong_timeout", "error", "auth_failed", "subscribe_failed")) == 0
    skipped = [r for r in caplog.records if "skipped a websocket frame" in r.getMessage()]
    assert sorted(r.kind for r in skipped) == ["not_json", "unexpected_topic"]  # one line per kind, not per frame


async def test_order_push_reaches_on_orders(sim):
    async with Harness(sim.ws_url) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
        placed = sim.place_order(KEY, category="linear")
        await until(lambda: any(o.get("orderId") == placed["orderId"] for o in h.orders), what="order push")
        got = next(o for o in h.orders if o["orderId"] == placed["orderId"])
        assert got["category"] == "linear" and got["orderStatus"] == "New"


async def test_guardian_topics_hold_dcp_subscription(sim):
    async with Harness(sim.ws_url, topics=("order", "dcp.future", "dcp.spot")) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1, what="connected")
        assert h.value("bybit_dcp_ws_dcp_subscribed", product="DERIVATIVES") == 1
        assert h.value("bybit_dcp_ws_dcp_subscribed", product="SPOT") == 1
        assert h.value("bybit_dcp_ws_dcp_subscribed", product="OPTIONS") == 0
        subs = [f for _, f in sim.account(KEY).ws_frames if f.get("op") == "subscribe"]
        assert [f["args"] for f in subs] == [["order", "dcp.future", "dcp.spot"]]  # one request
        assert {"dcp.future", "dcp.spot"} <= sim.account(KEY).subscribed_topics()
        sim.stall(KEY, True)
        await until(lambda: h.value("bybit_dcp_ws_connected") == 0, what="down after stall")
        assert h.value("bybit_dcp_ws_dcp_subscribed", product="DERIVATIVES") == 0
    assert h.value("bybit_dcp_ws_dcp_subscribed", product="SPOT") == 0


async def test_auth_failure_is_backed_off_visible_and_secret_free(sim, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-never-logged-42"
    async with Harness(sim.ws_url, secret=wrong) as h:
        await until(lambda: h.reconnects("auth_failed") >= 2, what="two auth failures")
        assert h.value("bybit_dcp_ws_connected") == 0
        assert h.stream.auth_attempt >= 2
        assert not any(f.get("op") == "subscribe" for _, f in sim.account(KEY).ws_frames)
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "auth refused" in text and "Request not authorized" in text
    assert wrong not in text and SECRET not in text
    m = re.search(r"[0-9a-f]{64}", text)
    assert not m, text[max(0, m.start() - 400) : m.end() + 50]


async def test_subscribe_failure_reconnects_with_reason(sim):
    async with Harness(sim.ws_url, topics=("no.such.topic",)) as h:
        await until(lambda: h.reconnects("subscribe_failed") >= 1, what="subscribe failure")
        assert h.value("bybit_dcp_ws_connected") == 0


async def test_unreachable_endpoint_counts_errors_and_ping_gap_grows_from_start():
    port = free_port()  # a port nobody listens on
    async with Harness(f"ws://127.0.0.1:{port}/v5/private") as h:
        await until(lambda: h.reconnects("error") >= 2, what="connection errors")
        gap = h.value("bybit_dcp_ws_ping_gap_seconds")
        assert gap is not None and gap >= 0  # measured from the stream's start: no pong yet
        assert h.value("bybit_dcp_ws_connected") == 0


async def test_reconnects_wait_for_the_shared_connection_budget():
    """Failing connections never loop faster than the per-host budget allows."""
    port = free_port()
    slept: list[float] = []

    class RecordingClock(Clock):
        """Real time, but a sleep is only noted: the waits are the result, not something to sit out."""

        async def sleep(self, seconds):
            slept.append(seconds)
            await asyncio.sleep(0)

    metrics = Metrics()
    metrics.add_account(ACCOUNT, environment="test", mode="observer")
    cfg = StreamConfig(
        f"ws://127.0.0.1:{port}/v5/private",
        KEY,
        Secret(SECRET),
        ("order",),
        backoff_base=0.05,
        backoff_cap=0.2,
        handshake_timeout=2.0,
    )
    stream = PrivateStream(
        ACCOUNT,
        cfg,
        StreamMetrics(metrics, ACCOUNT),
        on_orders=lambda orders: None,
        rng=random.Random(5),
        budget=ConnectionBudget(limit=11, period=10.0, burst=1, pace=1.0),
        clock=RecordingClock(),
    )
    task = asyncio.create_task(stream.run())
    await until(lambda: (sample(metrics, "bybit_dcp_ws_reconnects_total", reason="error") or 0) >= 5, what="5 errors")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    budget_waits = sorted(d for d in slept if d > 0.2)
    backoffs = [d for d in slept if d <= 0.2]
    # one token up front, then 1 per second: the 2nd..5th openings wait about 1, 2, 3, 4 s
    assert len(budget_waits) >= 4 and budget_waits[:4] == pytest.approx([1, 2, 3, 4], abs=0.3)
    assert len(backoffs) >= 5 and all(0 <= d <= 0.2 for d in backoffs)


# ---- ending a stream on purpose (the drill's cuts) ----------------------------------------------


async def test_abort_drops_the_connection_and_run_ends_without_a_reconnect(sim):
    async with Harness(sim.ws_url) as h:
        await until(lambda: h.value("bybit_dcp_ws_connected") == 1 and h.rtt_count() >= 1, what="connected")
        h.stream.abort()
        await asyncio.wait_for(asyncio.shield(h.task), 5.0)  # run() returns by itself
        assert h.value("bybit_dcp_ws_connected") == 0
        assert sum(h.reconnects(r) for r in ("closed", "pong_timeout", "error")) == 0
        await asyncio.sleep(0.5)  # longer than the backoff cap: nothing comes back
        assert sim.connection_info() == []
        assert len([f for _, f in sim.account(KEY).ws_frames if f.get("op") == "auth"]) == 1
        h.task = asyncio.create_task(asyncio.sleep(3600))  # for the harness's exit to cancel


async def test_go_silent_stops_pinging_and_run_ends_when_the_other_side_closes(sim):
    async with Harness(sim.ws_url, ping_interval=0.1) as h:
        await until(lambda: h.rtt_count() >= 2, what="two pongs")
        h.stream.go_silent()
        await asyncio.sleep(0.05)
        pings = len([f for _, f in sim.account(KEY).ws_frames if f.get("op") == "ping"])
        await asyncio.sleep(0.5)  # five intervals
        assert len([f for _, f in sim.account(KEY).ws_frames if f.get("op") == "ping"]) == pings
        assert len(sim.connection_info()) == 1 and not h.task.done()  # the socket stays open
        assert not h.reconnects("pong_timeout")  # nobody waits for a pong any more
        assert sim.close_connections(KEY, 1000, "idle") == 1
        await asyncio.wait_for(asyncio.shield(h.task), 5.0)
        assert h.reconnects("closed") == 0 and h.value("bybit_dcp_ws_connected") == 0
        h.task = asyncio.create_task(asyncio.sleep(3600))
