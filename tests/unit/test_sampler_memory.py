"""What the status board's sampler keeps per account, and that the compact forms read as the
plain ones did: the sample times one ring for all, the RTT marks in two arrays, the remembered
snapshot as an array of values beside a shared layout, events only once there are any."""

from __future__ import annotations

import math
import tracemalloc
from collections import deque

from exporter.metrics import Metrics
from exporter.status import sampler
from exporter.status.events import REMEMBERED
from exporter.status.sampler import CountMarks, History, Sampler
from exporter.status.snapshot import SAMPLED_SOURCES, Snapshot, collect, read

T0 = 1_800_000_000.0


def fleet(*names: str) -> Metrics:
    metrics = Metrics()
    for name in names:
        metrics.add_account(
            name,
            environment="testnet",
            mode="observer",
            desired_windows={"SPOT": 10},
            ping_interval=20,
            pong_timeout=10,
        )
        metrics.ws_connected.labels(name).set(1)
    return metrics


def test_an_account_left_out_of_samples_keeps_the_times_it_was_sampled_at():
    metrics = fleet("a", "b")
    snaps = read(collect(metrics, SAMPLED_SOURCES))
    only_a = {"a": snaps["a"]}
    s = Sampler(300.0)  # a ring of 4 samples: the shared ring wraps within the test
    taken: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for i, names in enumerate(["ab", "ab", "a", "a", "ab", "ab", "ab", "abc", "abc"]):
        at = T0 + 300 * i
        s.record({n: snaps.get(n, Snapshot(n)) for n in names} if names != "a" else only_a, at)
        for n in names:
            taken[n].append(at)
    for name in "abc":
        view = s.view(name, T0 + 3000)
        assert view is not None and view.times == taken[name][-4:], name


def test_count_marks_give_the_newest_counts_at_or_before_a_moment_as_they_widen():
    marks = CountMarks(3)
    assert marks.last_at() is None and list(marks.latest_at_or_before(100.0)) == []
    marks.append(10.0, ())  # no buckets yet
    marks.append(20.0, (1.0, 2.0))
    assert list(marks.latest_at_or_before(15.0)) == [] and list(marks.latest_at_or_before(25.0)) == [1.0, 2.0]
    marks.append(30.0, (1.0, 2.0, 5.0))  # wider: the older marks keep their own counts
    assert list(marks.latest_at_or_before(29.0)) == [1.0, 2.0]
    marks.append(40.0, (2.0, 3.0, 7.0))  # the first falls out
    assert marks.last_at() == 40.0
    assert list(marks.latest_at_or_before(35.0)) == [1.0, 2.0, 5.0]
    assert list(marks.latest_at_or_before(40.0)) == [2.0, 3.0, 7.0]
    assert list(marks.latest_at_or_before(15.0)) == []  # (10, ()) is gone, and nothing older


def test_what_is_remembered_reads_as_the_snapshot_it_came_from():
    metrics = fleet("a")
    metrics.ws_reconnects.labels("a", "closed").inc(2)
    metrics.ws_reconnects.labels("a", "pong_timeout").inc()
    metrics.triggers.labels("a", "SPOT").inc()
    metrics.last_poll_error.labels("a", "10003", "a bad key").set(1)
    snap = read(collect(metrics))["a"]
    kept = snap.only(REMEMBERED)
    for name in REMEMBERED:
        assert dict(kept.by(name)) == dict(snap.by(name)), name
        for key in (*snap.by(name), "", "nowhere"):
            assert kept.get(name, key) == snap.get(name, key) and kept.flag(name, key) == snap.flag(name, key)
    assert kept.get("bybit_dcp_up") is None and dict(kept.by("bybit_dcp_up")) == {}
    assert (kept.account, kept.error_code, kept.error_hint) == ("a", "10003", "a bad key")
    assert kept.series == {name: dict(snap.by(name)) for name in REMEMBERED if name in snap.series}
    assert kept == snap.only(REMEMBERED)  # equal by value, as a Snapshot was


def test_an_hour_of_one_accounts_history_holds_under_5_kb():
    """The rings, the hour of reconnect marks, the RTT marks and what the next sample is
    compared with; before these were compact (own sample times, a deque of RTT marks, the
    remembered snapshot as dicts of floats, an empty events deque) it was about 10 KB."""
    metrics = fleet("a")

    def an_hour(s: Sampler) -> None:
        for i in range(720):  # an hour of samples, the RTT histogram growing
            metrics.ws_rtt.labels("a").observe(0.01 + i % 7 / 1000)
            metrics.ws_heartbeat_gap.labels("a").observe(20.0)
            s.record(read(collect(metrics, SAMPLED_SOURCES)), T0 + 5 * i)

    s = Sampler(5.0)
    tracemalloc.start()
    try:
        for _ in range(2):  # first, so the freed snapshots' tuples fill the interpreter's free lists (2,000 a size)
            an_hour(Sampler(5.0))
        before = tracemalloc.take_snapshot()
        an_hour(s)
        changes = tracemalloc.take_snapshot().compare_to(before, "filename")
        held = sum(c.size_diff for c in changes if c.traceback[0].filename == sampler.__file__)
        held += sum(c.size_diff for c in changes if c.traceback[0].filename.endswith("status/snapshot.py"))
    finally:
        tracemalloc.stop()
    shared_times = 8 * s._size  # one ring for every account
    assert held - shared_times < 5 * 1024, held


def test_a_quiet_account_has_no_events_to_keep():
    history = History(4)
    snap = read(collect(fleet("a"), SAMPLED_SOURCES))["a"]
    assert history.record(snap, T0) == [] and not isinstance(history.events, deque)
    history.watch.ever_connected = True
    quiet = Snapshot("a", {"bybit_dcp_ws_connected": {"": 0.0}})
    history.record(quiet, T0 + 5)
    (event,) = history.events
    assert event.kind == "stream_down" and not math.isnan(event.at)
