"""The status board's pure core, without sockets: snapshots, the sampler's memory, events,
states, the HTML and the JSON. Metrics are set by hand and time is passed in."""

from __future__ import annotations

import inspect
import json
import math
import random
import re
import tracemalloc
from collections.abc import Callable

import pytest
from status_page import article, cells, fact, state, text

from exporter.metrics import Metrics
from exporter.status import api, events, model, render, sampler
from exporter.status.sampler import Marks, Ring, Sampler
from exporter.status.service import StatusService
from exporter.status.snapshot import GAP, RTT, SAMPLED_SOURCES, SOURCES, Snapshot, collect, quantile, read

T0 = 1_800_000_000.0


class Desk:
    """One Metrics with accounts, a sampler, and a clock the test moves."""

    def __init__(self, *names: str, interval: float = 5.0) -> None:
        self.metrics = Metrics(clock=lambda: self.now)
        self.now = T0
        self.names = list(names) or ["a"]
        for name in self.names:
            self.metrics.add_account(
                name,
                environment="testnet",
                mode="observer",
                desired_windows={"SPOT": 10},
                ping_interval=20,
                pong_timeout=10,
            )
        self.sampler = Sampler(interval)

    def healthy(self, name: str = "a") -> None:
        m = self.metrics
        m.up.labels(name).set(1)
        m.last_poll_success.labels(name).set(self.now)
        m.ws_connected.labels(name).set(1)
        m.ws_last_pong.labels(name).set(self.now)
        m.ping_gap.set_source(name, lambda: self.now - 2)
        for product, enabled in (("SPOT", 1), ("DERIVATIVES", 1), ("OPTIONS", 0)):
            m.enabled.labels(name, product).set(enabled)
            if enabled:
                m.window.labels(name, product).set(10)

    def step(self, seconds: float = 5.0):
        self.now += seconds
        return self.sampler.record(read(collect(self.metrics)), self.now)

    def status(self, name: str = "a", links: model.Links | None = None) -> model.AccountStatus:
        snaps = read(collect(self.metrics))
        view = self.sampler.view(name, self.now)
        return model.account_status(name, snaps.get(name), view, self.now, links or model.Links())

    def board(self, account: str | None = None) -> model.Board:
        rows = [self.status(n) for n in self.names if account in (None, n)]
        return model.board(rows, self.sampler.events(account), self.names, now=self.now, ready=True, selected=account)


def test_ring_keeps_the_last_values_oldest_first():
    ring = Ring(3)
    assert ring.values() == []
    ring.append(1.0)
    ring.append(None)
    assert ring.values()[0] == 1.0 and math.isnan(ring.values()[1])
    for v in (2.0, 3.0, 4.0):
        ring.append(v)
    assert ring.values() == [2.0, 3.0, 4.0]


def _read_from_samples(families) -> dict[str, dict]:
    """The same reading done the slow, obvious way: one Sample at a time (the reference)."""
    out: dict[str, dict] = {}
    for family in families:
        for sample in family.samples:
            labels = dict(sample.labels)
            account = labels.pop("account", None)
            if account is None:
                continue
            snap = out.setdefault(account, {"series": {}, "buckets": []})
            if sample.name == "bybit_dcp_ws_ping_rtt_seconds_bucket":
                snap["buckets"].append((float(labels["le"]), sample.value))
            elif sample.name == "bybit_dcp_ws_heartbeat_gap_seconds_bucket":
                snap.setdefault("gap_buckets", []).append((float(labels["le"]), sample.value))
            elif sample.name == "bybit_dcp_last_poll_error_info":
                snap["error"] = (labels["code"], labels["hint"])
            elif sample.name == "bybit_dcp_account_info":
                snap["info"] = (labels["environment"], labels["mode"])
            else:
                key = next((labels[k] for k in ("product", "category", "reason", "code", "to") if k in labels), "")
                values = snap["series"].setdefault(sample.name, {})
                values[key] = values.get(key, 0.0) + sample.value
    return out


def test_reading_rows_gives_what_reading_every_sample_gives():
    desk = Desk("a", "b")
    desk.healthy("a")
    m = desk.metrics
    for rtt in (0.004, 0.02, 0.02, 0.3, 7.0):
        m.ws_rtt.labels("a").observe(rtt)
    m.api_errors.labels("a", "query_dcp_info", "10003").inc(2)
    m.api_errors.labels("a", "server_time", "10003").inc()  # the same code at another endpoint: summed
    m.api_errors.labels("b", "query_dcp_info", "timeout").inc()
    m.ws_reconnects.labels("a", "pong_timeout").inc(3)
    for gap in (4.9, 5.1, 12.0):
        m.ws_heartbeat_gap.labels("b").observe(gap)
    m.triggers.labels("b", "SPOT").inc()
    m.cancelled_orders.labels("b", "spot").inc(4)
    m.last_poll_error.labels("b", "timeout", "no answer").set(1)
    m.guardian_transitions.labels("a", "armed").inc()
    families = collect(m)
    fast, slow = read(families), _read_from_samples(families)
    assert sorted(fast) == sorted(slow) == ["a", "b"]
    for account, snap in fast.items():
        assert snap.series == slow[account]["series"]
        assert snap.rtt_buckets == tuple(sorted(slow[account]["buckets"]))
        assert tuple(zip(snap.gap_bounds, snap.gap_counts)) == tuple(sorted(slow[account]["gap_buckets"]))
        assert (snap.error_code, snap.error_hint) == slow[account].get("error", (None, ""))
        assert (snap.environment, snap.mode) == slow[account]["info"]
    assert fast["a"].get("bybit_dcp_api_errors_total", "10003") == 3
    assert fast["a"].rtt_counts == (1, 1, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5)  # cumulative, as /metrics has them


def test_quantile_counts_only_the_observations_in_the_window():
    earlier = ((0.01, 100.0), (0.1, 100.0), (float("inf"), 100.0))  # 100 fast pongs, long ago
    now = ((0.01, 100.0), (0.1, 110.0), (float("inf"), 110.0))  # then 10 between 10 and 100 ms
    assert quantile(0.5, now, earlier) == pytest.approx(0.055)
    assert quantile(0.5, now, ()) == pytest.approx(0.0055)  # since start: the fast ones dominate
    assert math.isnan(quantile(0.5, earlier, earlier))  # nothing in the window


def test_rtt_p50_p99_over_the_last_five_minutes_not_since_start():
    desk = Desk()
    desk.healthy()
    for _ in range(1000):
        desk.metrics.ws_rtt.labels("a").observe(0.004)
    desk.step()
    for _ in range(70):  # six minutes: the fast pongs leave the window
        desk.step()
    for _ in range(100):
        desk.metrics.ws_rtt.labels("a").observe(0.3)
    desk.step()
    status = desk.status()
    assert 0.25 < status.rtt_p50 <= 0.5 and 0.25 < status.rtt_p99 <= 0.5


def test_a_healthy_account_is_ok_and_says_so():
    desk = Desk()
    desk.healthy()
    desk.step()
    status = desk.status()
    assert status.state == model.OK and status.reasons == ()
    assert [p.enabled for p in status.products] == [True, True, False]
    assert desk.step() == []  # nothing happened: no event, not even "stream up" at the start


def test_unknown_before_the_first_poll_and_while_polls_fail_never_off():
    desk = Desk()
    desk.step()
    status = desk.status()
    assert status.state == model.UNKNOWN
    assert [p.enabled for p in status.products] == [None, None, None]
    desk.metrics.last_poll_error.labels("a", "10003", "API key unknown on this environment").set(1)
    (event,) = desk.step()
    assert (event.kind, event.text) == ("poll_error", "DCP poll failing: 10003 – API key unknown on this environment")
    status = desk.status()
    assert status.state == model.UNKNOWN and status.error_code == "10003"
    assert status.runbook_url.endswith("#bybitdcpconfigpollfailing")
    desk.metrics.last_poll_error.clear()
    desk.healthy()
    assert [(e.kind, e.text) for e in desk.step(30)] == [("poll_ok", "DCP poll good again after 30 s")]


def test_stream_down_and_up_with_reason_and_duration():
    desk = Desk()
    desk.healthy()
    desk.step()
    desk.metrics.ws_connected.labels("a").set(0)
    desk.metrics.ws_reconnects.labels("a", "pong_timeout").inc()
    assert [(e.kind, e.text) for e in desk.step()] == [
        ("stream_down", "the private stream dropped (no pong in time) and is not back yet")
    ]
    assert desk.status().state == model.DOWN
    assert desk.status().reasons[0].alert == "BybitDcpStreamDisconnected"
    desk.step(100)
    desk.metrics.ws_connected.labels("a").set(1)
    assert [(e.kind, e.text) for e in desk.step()] == [("stream_up", "the private stream is back after 2 min")]
    desk.metrics.ws_reconnects.labels("a", "closed").inc()  # dropped and back within one sample
    assert [(e.kind, e.text) for e in desk.step()] == [
        ("stream_reconnected", "the private stream dropped (closed by the server or the network) and came back")
    ]
    desk.metrics.ws_connected.labels("a").set(0)
    desk.metrics.ws_reconnects.labels("a", "closed").inc()
    desk.metrics.ws_reconnects.labels("a", "auth_failed").inc(3)
    (down,) = desk.step()
    assert (
        down.text
        == "the private stream dropped (Bybit refused the login (3 times); closed by the server or the network) and is not back yet"
    )
    assert desk.status().reasons[0].text == (
        "stream disconnected (drops and retries since start: Bybit refused the login (3 times); "
        "closed by the server or the network (2 times); no pong in time)"
    )


def test_a_silent_stream_is_down_before_it_reconnects():
    desk = Desk()
    desk.healthy()
    desk.metrics.ping_gap.set_source("a", lambda: desk.now - 31)
    desk.step()
    status = desk.status()
    assert status.state == model.DOWN and status.reasons[0].text == "no pong for 31 s (ping every 20 s)"


def test_trigger_with_its_orders_and_categories_and_a_late_backfill():
    desk = Desk()
    desk.healthy()
    desk.step()
    m = desk.metrics
    m.triggers.labels("a", "DERIVATIVES").inc()
    m.cancelled_orders.labels("a", "linear").inc(3)
    m.last_trigger.labels("a", "DERIVATIVES").set(desk.now + 4)
    (event,) = desk.step()
    assert event.text == "DCP fired on DERIVATIVES: 3 orders cancelled (linear 3)" and event.severity == "critical"
    m.cancelled_orders.labels("a", "inverse").inc()  # found by the backfill a little later
    (event,) = desk.step()
    assert event.text == "1 more orders cancelled by DCP (inverse 1)"
    status = desk.status()
    assert status.state == model.DOWN and status.last_trigger.orders == {"linear": 3, "inverse": 1}
    desk.step(20 * 60)
    assert desk.status().state == model.DEGRADED  # while BybitDcpTriggered still fires it is worth a look
    desk.step(10 * 60)
    assert desk.status().state == model.DEGRADED  # 30 min 5 s after: the alert is held 30 min past its first minute
    desk.step(2 * 60)
    assert desk.status().state == model.OK  # and clears with it (it was an hour)


def test_drift_reassertion_guardian_and_drill_events():
    desk = Desk()
    desk.healthy()
    desk.step()
    m = desk.metrics
    m.window.labels("a", "SPOT").set(30)
    m.drift.labels("a", "SPOT").set(1)
    m.reassert_attempts.labels("a", "SPOT").inc()
    m.reassert_failures.labels("a", "SPOT").inc()
    assert [e.text for e in desk.step()] == [
        "SPOT window drift: Bybit reports 30 s, desired 10 s",
        "SPOT re-assertion failed",
    ]
    spot = desk.status().products[0]
    assert spot.drift and spot.reassert == "re-asserting: 1 sent, 1 failed" and desk.status().state == model.DEGRADED
    m.window.labels("a", "SPOT").set(10)
    m.drift.labels("a", "SPOT").set(0)
    m.reassert_last_success.labels("a", "SPOT").set(desk.now + 3)
    assert [e.text for e in desk.step()] == ["SPOT window re-asserted to 10 s and verified"]
    m.guardian_armed.labels("a", "DERIVATIVES").set(0)
    m.guardian_transitions.labels("a", "released").inc()
    m.drill_last_run.labels("a", "DERIVATIVES").set(desk.now)
    m.drill_last_success.labels("a", "DERIVATIVES").set(1)
    m.drill_trigger_delay.labels("a", "DERIVATIVES").set(10.25)
    assert [(e.kind, e.text) for e in desk.step()] == [
        ("guardian_released", "guardian let go: the bot went silent, DCP may fire"),
        ("drill", "DERIVATIVES drill passed: DCP cancelled the canary 10.2 s after the cut"),
    ]
    assert desk.status().state == model.DOWN
    assert desk.status().reasons[0].alert == "BybitDcpGuardianLetGo"


def test_marks_give_the_newest_value_at_or_before_a_moment_and_forget_the_oldest():
    marks = Marks(3)
    assert marks.last_at() is None and marks.latest_at_or_before(100.0, -1.0) == -1.0
    for at, value in ((10.0, 1.0), (20.0, 2.0), (30.0, 3.0), (40.0, 4.0)):  # the first falls out
        marks.append(at, value)
    assert marks.last_at() == 40.0
    assert marks.latest_at_or_before(35.0, -1.0) == 3.0
    assert marks.latest_at_or_before(20.0, -1.0) == 2.0
    assert marks.latest_at_or_before(15.0, -1.0) == -1.0  # (10, 1) is gone


def an_hour_of_marks(value: Callable[[int], float]) -> tuple[Marks, int]:
    """Marks of an hour, a mark a minute of ``value(minute)``, and the bytes the sampler's
    module allocated for them (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        marks = Marks(62)
        for minute in range(62):
            marks.append(60.0 * minute, value(minute))
        changes = tracemalloc.take_snapshot().compare_to(before, "filename")
        held = sum(c.size_diff for c in changes if c.traceback[0].filename == sampler.__file__)
    finally:
        tracemalloc.stop()
    return marks, held


def test_an_hour_of_reconnect_marks_is_two_arrays_not_a_deque_of_tuples():
    _, held = an_hour_of_marks(float)
    assert held < 2048  # 62 tuples of two floats in a deque: about 7 KB


def test_an_hour_without_a_reconnect_is_one_mark():
    marks, held = an_hour_of_marks(lambda minute: 3.0)
    assert held < 400  # every mark kept: about 1.4 KB
    assert marks.last_at() == 60.0 * 61 and marks.latest_at_or_before(30.0, -1.0) == 3.0


def test_marks_kept_where_the_value_changed_read_as_every_mark_kept():
    """Against every mark kept: the same value at every moment back to the oldest of the last
    ``size`` marks (what the board reads) and before the first, over counts that often stay
    the same, sometimes step, and keep stepping."""
    rng = random.Random(7)
    for _ in range(200):
        size = rng.randint(2, 8)
        marks, every = Marks(size), []
        value = 0.0
        for minute in range(rng.randint(1, 40)):
            value += rng.choice([0.0, 0.0, 0.0, 1.0, 2.0])
            marks.append(60.0 * minute, value)
            every.append((60.0 * minute, value))
            oldest = every[-size:][0][0]
            moments = [-1.0] + [60.0 * minute - 30.0 * k for k in range(int((60.0 * minute - oldest) / 30.0) + 1)]
            for moment in moments:
                expected = next((v for at, v in reversed(every) if at <= moment), -1.0)
                assert marks.latest_at_or_before(moment, -1.0) == expected, (size, every, moment)


def test_reconnects_in_the_last_hour_only():
    desk = Desk()
    desk.healthy()
    desk.metrics.ws_reconnects.labels("a", "closed").inc(5)
    desk.step()
    assert desk.status().reconnects_hour == 5 and desk.status().state == model.DEGRADED
    for _ in range(13):  # 65 minutes
        desk.step(300)
    desk.metrics.ws_reconnects.labels("a", "closed").inc()
    desk.step()
    assert desk.status().reconnects_hour == 1 and desk.status().state == model.OK


def test_worst_first_and_the_timeline_keeps_200_events_newest_first():
    desk = Desk("calm", "broken", "starting")
    desk.healthy("calm")
    desk.healthy("broken")
    desk.step()
    desk.metrics.ws_connected.labels("broken").set(0)
    for _ in range(150):
        desk.metrics.ws_reconnects.labels("calm", "closed").inc()
        desk.step()
        desk.metrics.ws_reconnects.labels("calm", "closed").inc()
        desk.step()
    board = desk.board()
    assert [a.state for a in board.accounts] == ["down", "unknown", "degraded"]
    assert [a.account for a in board.accounts] == ["broken", "starting", "calm"]
    assert len(board.events) == 200 and board.events[0].at > board.events[-1].at
    assert [e.kind for e in desk.board("broken").events] == ["stream_down"]  # not pushed out by "calm"


def test_links_per_account():
    links = model.Links("https://grafana.example/d/bybit-dcp?orgId=1", "https://wiki.example/runbook")
    assert links.dashboard("desk a/1") == "https://grafana.example/d/bybit-dcp?orgId=1&var-account=desk%20a%2F1"
    assert links.runbook("BybitDcpTriggered") == "https://wiki.example/runbook#bybitdcptriggered"
    assert model.Links().dashboard("a") is None


def test_the_page_escapes_every_value_and_stays_small():
    hostile = '<img src=x onerror="alert(1)">'
    desk = Desk(hostile)
    desk.healthy(hostile)
    desk.metrics.last_poll_error.labels(hostile, "10003", "<b>hint</b> & more").set(1)
    for i in range(200):  # more than 15 minutes of history, and every event
        desk.metrics.ws_rtt.labels(hostile).observe(0.01 + i % 7 / 1000)
        if i % 2:
            desk.metrics.ws_reconnects.labels(hostile, "closed").inc()
        desk.step()
    page = render.page(desk.board(), "/metrics")
    assert hostile not in page and "<b>hint</b>" not in page
    card = article(page, hostile)
    assert state(card) == "unknown" and fact(card, "error") == "10003 – <b>hint</b> & more"
    assert cells(card, "SPOT")[1] == "unknown"
    assert len(page.encode()) < 100_000, len(page.encode())
    assert "no pong" not in text(card)


def test_json_says_null_for_what_nobody_knows():
    desk = Desk()
    desk.step()
    body = json.loads(json.dumps(api.status(desk.board())))
    (a,) = body["accounts"]
    assert a["state"] == "unknown" and a["last_error"] is None and a["rtt_p50_seconds"] is None
    assert [p["enabled"] for p in a["products"]] == [None, None, None]
    assert a["products"][0]["desired_window_seconds"] == 10
    assert body["counts"] == {"down": 0, "unknown": 1, "degraded": 0, "ok": 0}


def test_what_the_sampler_remembers_covers_every_series_the_next_sample_is_compared_with():
    """Only ``events.REMEMBERED`` is kept between samples: a series read from the previous
    snapshot but not kept would be compared with 0 and tell the same event again."""
    from exporter.status.events import REMEMBERED, Watch, advance
    from exporter.status.sampler import History

    read_names: set[str] = set()
    desk = Desk("a")
    desk.healthy("a")
    m = desk.metrics
    m.triggers.labels("a", "SPOT").inc()
    m.drift.labels("a", "SPOT").set(1)
    m.reassert_last_success.labels("a", "SPOT").set(T0)
    m.drill_last_run.labels("a", "SPOT").set(T0)
    now = read(collect(m))["a"]
    before = recorder(read_names)(Snapshot("a", {name: dict(values) for name, values in now.series.items()}))
    advance(Watch(previous=before), now, T0 + 5)
    history = History(4)
    history.watch.previous = before
    history.record(now, T0 + 5)
    kept = {*REMEMBERED, "bybit_dcp_last_poll_error_info"}  # ``only`` keeps the poll error besides REMEMBERED
    assert read_names and read_names <= kept, read_names - kept


# The Snapshot attributes that stand for a family rather than a series.
SNAPSHOT_FIELDS = {
    "rtt_bounds": RTT,
    "rtt_counts": RTT,
    "gap_bounds": GAP,
    "gap_counts": GAP,
    "error_code": "bybit_dcp_last_poll_error_info",
    "error_hint": "bybit_dcp_last_poll_error_info",
    "environment": "bybit_dcp_account_info",
    "mode": "bybit_dcp_account_info",
}


def recorder(asked: set[str]) -> Callable[[Snapshot], Snapshot]:
    """Copies of snapshots that note in ``asked`` every series (or family behind a field) read
    from them, through any of a snapshot's ways in; what ``only`` keeps is recorded too."""

    class Series(dict):
        def __getitem__(self, name):
            asked.add(name)
            return super().__getitem__(name)

        def get(self, name, default=None):
            asked.add(name)
            return super().get(name, default)

        def __contains__(self, name):
            asked.add(name)
            return super().__contains__(name)

    class Recording(Snapshot):
        def __getattribute__(self, attr):
            if attr in SNAPSHOT_FIELDS:
                asked.add(SNAPSHOT_FIELDS[attr])
            return super().__getattribute__(attr)

        def get(self, name, key=""):
            asked.add(name)
            return super().get(name, key)

        def by(self, name):
            asked.add(name)
            return super().by(name)

        def flag(self, name, key=""):
            asked.add(name)
            return super().flag(name, key)

        def only(self, names):  # what is kept is asked of the next sample's ``before``: recorded too
            names = list(names)
            asked.update(names)
            kept = super().only(names)
            return Recording(kept.account, Series(kept.series), error_code=kept.error_code, error_hint=kept.error_hint)

    def recording(s: Snapshot) -> Snapshot:
        return Recording(
            s.account, Series(s.series), s.environment, s.mode, s.error_code, s.error_hint, s.rtt_bounds, s.rtt_counts
        )

    return recording


# Every kind of event ``advance`` tells (each is said once in its source, as ``say("kind", ...)``).
EVENT_KINDS = set(re.findall(r'say\("(\w+)"', inspect.getsource(events)))


def _every_event(desk: Desk, step) -> list[str]:
    """Take account "a" through every kind of event, with pongs all along and steps of a minute
    for the RTT and reconnect marks; "b" is added and never heard from. ``step(seconds)``
    samples and gives the events; the kinds told, in order."""
    m = desk.metrics
    kinds: list[str] = []

    def then(seconds: float = 5.0) -> None:
        m.ws_rtt.labels("a").observe(0.01 + desk.now % 7 / 1000)
        kinds.extend(e.kind for e in step(seconds))

    desk.healthy()
    then()
    m.last_poll_error.labels("a", "10003", "API key unknown on this environment").set(1)
    then()
    m.last_poll_error.clear()
    then(61)
    m.ws_connected.labels("a").set(0)
    m.ws_reconnects.labels("a", "pong_timeout").inc()
    then()
    m.ws_connected.labels("a").set(1)
    then(61)
    m.ws_reconnects.labels("a", "closed").inc()
    then()
    m.triggers.labels("a", "DERIVATIVES").inc()
    m.cancelled_orders.labels("a", "linear").inc(3)
    m.last_trigger.labels("a", "DERIVATIVES").set(desk.now)
    then()
    m.cancelled_orders.labels("a", "inverse").inc()  # the backfill's late find
    then()
    m.window.labels("a", "SPOT").set(30)
    m.drift.labels("a", "SPOT").set(1)
    m.reassert_failures.labels("a", "SPOT").inc()
    then()
    m.window.labels("a", "SPOT").set(10)
    m.drift.labels("a", "SPOT").set(0)
    m.reassert_last_success.labels("a", "SPOT").set(desk.now)
    then()
    m.drift.labels("a", "SPOT").set(1)
    then()
    m.drift.labels("a", "SPOT").set(0)  # cleared without a re-assertion
    then()
    m.guardian_armed.labels("a", "DERIVATIVES").set(0)
    m.guardian_transitions.labels("a", "released").inc()
    then()
    m.guardian_armed.labels("a", "DERIVATIVES").set(1)
    m.guardian_transitions.labels("a", "armed").inc()
    then()
    m.drill_last_run.labels("a", "DERIVATIVES").set(desk.now)
    m.drill_last_success.labels("a", "DERIVATIVES").set(1)
    m.drill_trigger_delay.labels("a", "DERIVATIVES").set(10.25)
    then(61)
    m.drill_last_run.labels("a", "DERIVATIVES").set(desk.now)
    m.drill_last_success.labels("a", "DERIVATIVES").set(0)
    then()
    return kinds


def test_sampling_only_the_sampled_families_tells_what_a_full_read_tells():
    """The periodic sample reads ``SAMPLED_SOURCES``, not all the families a page reads: fed
    side by side, a sampler of each must tell the same events and keep the same history."""
    desk = Desk("a", "b")
    full, sampled = Sampler(), Sampler()

    def step(seconds: float):
        desk.now += seconds
        told = full.record(read(collect(desk.metrics)), desk.now)
        assert sampled.record(read(collect(desk.metrics, SAMPLED_SOURCES)), desk.now) == told
        for name in desk.names:  # repr: a ring's NaN (no RTT in an interval) equals itself there
            assert repr(sampled.view(name, desk.now)) == repr(full.view(name, desk.now))
        return told

    assert set(_every_event(desk, step)) == EVENT_KINDS
    assert sampled.events() == full.events() and len(full.events()) > len(EVENT_KINDS)


def test_the_sampler_asks_only_for_series_the_sampled_families_give():
    """If ``advance`` or ``History.record`` came to read a series of a family not in
    ``SAMPLED_SOURCES``, the periodic sample would hand it nothing and tell a wrong event or
    none. Every series (and the RTT buckets, the poll error, the account info) asked of a
    snapshot through a whole scenario must come from a sampled family; and every sampled
    family is asked for, so the list is no longer than it needs to be."""
    asked: set[str] = set()
    recording = recorder(asked)

    desk = Desk("a", "b")

    def step(seconds: float):
        desk.now += seconds
        snapshots = {name: recording(s) for name, s in read(collect(desk.metrics)).items()}  # a full read
        return desk.sampler.record(snapshots, desk.now)

    assert set(_every_event(desk, step)) == EVENT_KINDS
    given: set[str] = set()
    for family in collect(desk.metrics, SAMPLED_SOURCES):
        given.update(
            (family.name, f"{family.name}_count", f"{family.name}_sum") if family.bounds else (family.value_name,)
        )
    assert asked <= given, f"read by the sampler, not sampled: {sorted(asked - given)}"
    assert asked == given, f"sampled, never read: {sorted(given - asked)}"


def test_the_periodic_sample_collects_only_the_sampled_families_and_a_page_all():
    desk = Desk()
    desk.healthy()
    collected: list[str] = []

    class Counted:
        def __init__(self, source: str, collector) -> None:
            self.source, self.collector = source, collector

        def collect(self):
            collected.append(self.source)
            return self.collector.collect()

    for source in SOURCES:
        setattr(desk.metrics, source.attr, Counted(source.attr, desk.metrics.family(source)))
    service = StatusService(desk.metrics)
    service.sample()
    assert sorted(collected) == sorted(s.attr for s in SAMPLED_SOURCES) and len(SAMPLED_SOURCES) < len(SOURCES)
    collected.clear()
    service.board(desk.names, now=desk.now, ready=True)
    assert sorted(collected) == sorted(s.attr for s in SOURCES)


def test_the_page_judges_by_the_alerts_thresholds_from_the_mixin():
    """One source: exporter/status/thresholds.py is generated from mixin/config.libsonnet (the
    build's --check fails on a stale copy), and a changed _config changes what the page reads."""
    import sys

    from helpers import ROOT

    from exporter.status import thresholds

    sys.path.insert(0, str(ROOT / "mixin"))
    import build

    generated = {k: v for k, v in vars(thresholds).items() if k.isupper()}
    assert (
        generated
        == build.thresholds()
        == {
            "RECONNECT_FLAPPING_COUNT": 3,
            "RECONNECT_FLAPPING_WINDOW_SECONDS": 900,
            "HEARTBEAT_GAP_WARNING_RATIO": 0.5,
            "HEARTBEAT_GAP_CRITICAL_RATIO": 0.8,
            "HEARTBEAT_RTT_HIGH_SECONDS": 0.5,
            "HEARTBEAT_RTT_WINDOW_SECONDS": 300,
            "TRIGGER_FIRING_SECONDS": 1860,
        }
    )
    assert build.THRESHOLDS_FILE.read_text() == build.thresholds_module()
    mine = build.thresholds({"reconnectFlappingCount": "5", "reconnectFlappingWindow": "1h"})
    assert (mine["RECONNECT_FLAPPING_COUNT"], mine["RECONNECT_FLAPPING_WINDOW_SECONDS"]) == (5, 3600)
    assert (model.FLAPPING_RECONNECTS, model.FLAPPING_WINDOW_SECONDS) == (3, 900)
    assert (model.RTT_P90_HIGH_SECONDS, sampler.RTT_WINDOW_SECONDS) == (0.5, 300)


def test_flapping_is_more_than_three_reconnects_in_15_minutes_as_the_alert_counts():
    desk = Desk()
    desk.healthy()
    desk.step()
    for n in range(4):  # four in an hour, 16 minutes apart: the alert never fires
        desk.metrics.ws_reconnects.labels("a", "closed").inc()
        for _ in range(16 if n < 3 else 1):
            desk.step(60)
    status = desk.status()
    assert status.reconnects_hour == 4 and status.reconnects_flapping == 1 and status.state == model.OK
    for _ in range(3):  # four within 15 minutes
        desk.metrics.ws_reconnects.labels("a", "closed").inc()
        desk.step(60)
    status = desk.status()
    assert status.reconnects_flapping == 4 and status.state == model.DEGRADED
    assert (status.reasons[0].text, status.reasons[0].alert) == (
        "4 reconnects in the last 15 min",
        "BybitDcpReconnectFlapping",
    )
    page = render.page(desk.board(), "/metrics")
    assert fact(article(page, "a"), "reconnects") == "4" and "Reconnects, last 15 min" in page
    body = api.status(desk.board())["accounts"][0]
    assert body["reconnects_flapping_window"] == {"seconds": 900, "count": 4}


def test_a_slow_heartbeat_is_the_alerts_p90_above_half_a_second():
    desk = Desk()
    desk.healthy()
    m = desk.metrics
    for _ in range(85):
        m.ws_rtt.labels("a").observe(0.02)
    for _ in range(15):  # 15 % of the pongs at 0.7 s: p90 above 0.5 s, p99 below the old 1 s mark
        m.ws_rtt.labels("a").observe(0.7)
    desk.step()
    status = desk.status()
    assert 0.5 < status.rtt_p90 < 1.0 and status.rtt_p99 < 1.0
    assert status.state == model.DEGRADED and status.reasons[0].alert == "BybitDcpHeartbeatRttHigh"
    assert re.fullmatch(r"RTT p90 \d+ ms over 5 min", status.reasons[0].text)
    card = article(render.page(desk.board(), "/metrics"), "a")
    assert re.fullmatch(r"[\d.]+ ms / [\d.]+ ms / [\d.]+ ms", fact(card, "rtt"))


def test_events_are_dated_as_their_series_date_them_and_the_card_agrees():
    """A trigger is dated by Bybit (its first cancel's updatedTime), not by the sample that saw it
    up to 5 s later; the card's "last trigger" and the timeline then name one moment."""
    desk = Desk()
    desk.healthy()
    desk.step()
    m = desk.metrics
    fired_at = desk.now + 1.25  # the sample comes 3.75 s later
    m.triggers.labels("a", "DERIVATIVES").inc()
    m.cancelled_orders.labels("a", "linear").inc(2)
    m.last_trigger.labels("a", "DERIVATIVES").set(fired_at)
    m.ws_reconnects.labels("a", "closed").inc()
    told = desk.step()
    trigger = next(e for e in told if e.kind == "trigger")
    assert trigger.at == fired_at == desk.status().last_trigger_at
    assert next(e for e in told if e.kind == "stream_reconnected").at == desk.now  # no time of its own
    m.drift.labels("a", "SPOT").set(1)
    desk.step()
    m.drift.labels("a", "SPOT").set(0)
    m.reassert_last_success.labels("a", "SPOT").set(desk.now + 2)
    (reasserted,) = desk.step()
    assert reasserted.at == desk.now - 3
    page = render.page(desk.board(), "/metrics")
    clock = __import__("time").strftime("%H:%M:%S", __import__("time").gmtime(fired_at))
    assert re.search(rf"<time[^>]*>{clock}</time> <b>critical</b>[^:]*: DCP fired on DERIVATIVES", page)
    ats = [e.at for e in desk.sampler.events()]
    assert ats == sorted(ats, reverse=True)  # newest first by their own times


def test_no_event_speaks_in_label_values():
    desk = Desk()

    def step(seconds: float):
        return desk.step(seconds)

    told = []
    original = desk.step

    def recording(seconds: float = 5.0):
        events = original(seconds)
        told.extend(events)
        return events

    desk.step = recording  # type: ignore[method-assign]
    _every_event(desk, step)
    texts = [e.text for e in told]
    assert texts and not any("between samples" in t or re.search(r"\b(closed|pong_timeout) \d", t) for t in texts)
    assert "the private stream dropped (closed by the server or the network) and came back" in texts


class Heartbeat:
    """A stream pinging every ``interval`` s whose pongs are ``gaps`` apart, on a desk's clock:
    ``run(until)`` moves the last pong and observes each gap as the stream does."""

    def __init__(self, desk: Desk, last: float) -> None:
        self.desk, self.last = desk, last
        desk.metrics.ping_gap.set_source("a", lambda: self.last)

    def pong_at(self, at: float) -> None:
        self.desk.metrics.ws_heartbeat_gap.labels("a").observe(at - self.last)
        self.desk.metrics.ws_last_pong.labels("a").set(at)
        self.last = at


def test_the_ping_gap_history_is_the_largest_gap_of_each_interval_not_a_phase_locked_instant():
    """Pings every 5 s, samples every 5 s, 1.9 s after each pong: the instant's gap reads 1.9 s
    every time while the sawtooth reaches 5 s; the history must show 5 s."""
    desk = Desk()
    desk.healthy()
    desk.step()
    beat = Heartbeat(desk, desk.now - 1.9)
    for _ in range(20):
        beat.pong_at(desk.now + 3.1)  # 5 s after the previous pong
        desk.step(5.0)  # 1.9 s after it
    gaps = desk.sampler.view("a", desk.now).gaps[1:]
    assert desk.status().ping_gap == pytest.approx(1.9)  # the fact stays the instant's gap
    assert gaps == pytest.approx([5.0] * len(gaps), abs=0.01)
    caption = re.search(
        r"Largest ping gap, last 15 min: now ([\d.]+) s, max ([\d.]+) s", render.page(desk.board(), "/m")
    )
    assert caption.groups() == ("5.0", "5.0")


def test_the_largest_gap_with_several_pongs_or_none_in_an_interval():
    desk = Desk(interval=10.0)
    desk.healthy()
    desk.step()
    beat = Heartbeat(desk, desk.now)
    for offset in (1.0, 2.0, 3.0, 4.0):  # four pongs a second apart: the mean tells it
        beat.pong_at(desk.now + offset)
    desk.step(10.0)
    assert desk.sampler.view("a", desk.now).gaps[-1] == pytest.approx(6.0)  # the growing tooth is the largest
    beat.pong_at(desk.now + 1.0)  # 7 s after the last
    beat.pong_at(desk.now + 1.5)
    beat.pong_at(desk.now + 2.0)
    desk.step(2.5)
    # 7, 0.5 and 0.5 s: the mean is 2.7 s, but one of them went into the (5, 10] bucket: at least 5 s.
    assert desk.sampler.view("a", desk.now).gaps[-1] == pytest.approx(5.0)
    desk.step(30.0)  # silence: no pong, the gap of the instant is the largest
    assert desk.sampler.view("a", desk.now).gaps[-1] == pytest.approx(30.5)


def test_a_late_heartbeat_is_judged_against_the_dcp_window_as_the_alerts_judge_it():
    """Overdue past the ping interval, as a fraction of the smallest enabled window: half is
    BybitDcpHeartbeatGapHigh's threshold, 0.8 its critical twin's (ping every 20 s, pong timeout
    10 s, windows 10 s: degraded from 25 s, down from 28 s, before the stream gives up at 30 s)."""
    desk = Desk()
    desk.healthy()
    for gap, expected, alert in (
        (24.0, model.OK, None),
        (25.5, model.DEGRADED, "BybitDcpHeartbeatGapHigh"),
        (28.5, model.DOWN, "BybitDcpHeartbeatGapCritical"),
    ):
        desk.metrics.ping_gap.set_source("a", lambda gap=gap: desk.now - gap)
        desk.step()
        status = desk.status()
        assert (status.state, status.reasons[0].alert if status.reasons else None) == (expected, alert), gap
    assert status.reasons[0].text == "heartbeat 8 s overdue, 85% of the 10 s DCP window"
    desk.metrics.window.labels("a", "SPOT").set(60)
    desk.metrics.window.labels("a", "DERIVATIVES").set(60)
    desk.step()
    assert desk.status().state == model.OK  # 8.5 s overdue is 14 % of a 60 s window
