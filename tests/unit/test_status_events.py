"""The sampler's events: a sample where nothing an event is told of changed is settled by one
compare of the remembered values, and tells exactly what reading every series would."""

from __future__ import annotations

import copy
import random

import pytest

from exporter.metrics import specs
from exporter.status import events
from exporter.status.events import REMEMBERED, TOLD, Watch, advance
from exporter.status.snapshot import Remembered, Snapshot

KEYS = {
    specs.TRIGGERS.sample: ("DERIVATIVES", "SPOT"),
    specs.CANCELLED_ORDERS.sample: ("linear", "spot"),
    specs.WS_RECONNECTS.sample: ("closed", "auth"),
    specs.WS_CONNECTED.sample: ("",),
    specs.REASSERT_LAST_SUCCESS.sample: ("DERIVATIVES",),
    specs.DRIFT.sample: ("DERIVATIVES", "SPOT"),
    specs.REASSERT_FAILURES.sample: ("SPOT",),
    specs.GUARDIAN_TRANSITIONS.sample: ("armed", "released"),
    specs.DRILL_LAST_RUN.sample: ("DERIVATIVES",),
}


def samples(rng: random.Random, n: int) -> list[Snapshot]:
    """One account's snapshots: every pong moves the RTT and gap counts, the rest changes now
    and then (counters up, flags flipping, a poll error coming and going, a series appearing)."""
    values = {name: dict.fromkeys(keys, 0.0) for name, keys in KEYS.items()}
    error: str | None = None
    out = []
    for i in range(n):
        for name, series in values.items():
            for key in series:
                if rng.random() < 0.08:
                    flag = name in (specs.WS_CONNECTED.sample, specs.DRIFT.sample)
                    series[key] = float(rng.random() < 0.5) if flag else series[key] + rng.choice([1.0, 2.0])
        if rng.random() < 0.05:
            error = rng.choice([None, "10003", "10016"])
        snap = Snapshot("a", error_code=error, error_hint="hint" if error else "")
        snap.series = {
            name: dict(series) for name, series in values.items() if name != specs.DRILL_LAST_RUN.sample or i > 3
        }
        snap.series[specs.WS_RTT.count_sample] = {"": float(i)}
        snap.series[specs.WS_RTT.sum_sample] = {"": 0.01 * i}
        snap.series[specs.WS_HEARTBEAT_GAP.count_sample] = {"": float(i)}
        snap.series[specs.WS_HEARTBEAT_GAP.sum_sample] = {"": 20.0 * i}
        snap.series[specs.WINDOW.sample] = {"DERIVATIVES": 10.0}
        out.append(snap)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_the_shortcut_tells_what_reading_every_series_tells(monkeypatch, seed):
    rng = random.Random(seed)
    snaps = samples(rng, 60)
    fast, full = Watch(), Watch()
    told_fast, told_full, shortcuts = [], [], 0
    real = Remembered.agrees
    for at, snap in enumerate(snaps):
        before = fast.previous
        told_fast.append(advance(fast, snap, float(at)))
        shortcuts += isinstance(before, Remembered) and real(snap.only(REMEMBERED), before, TOLD)
        with monkeypatch.context() as m:
            m.setattr(Remembered, "agrees", lambda self, other, names: False)
            told_full.append(advance(full, copy.deepcopy(snap), float(at)))
        assert told_fast[-1] == told_full[-1], at
        assert (fast.ever_connected, fast.down_since, fast.failing_since, fast.last_trigger) == (
            full.ever_connected,
            full.down_since,
            full.failing_since,
            full.last_trigger,
        )
        assert fast.previous == full.previous
    assert shortcuts > 0 and any(told_full)  # both kinds of sample came up


def test_a_sample_that_changed_only_the_pong_counts_is_settled_without_reading_the_series(monkeypatch):
    first, second = samples(random.Random(1), 2)
    second.series = {name: dict(series) for name, series in first.series.items()}
    second.series[specs.WS_RTT.count_sample] = {"": 99.0}
    watch = Watch()
    advance(watch, first, 0.0)
    monkeypatch.setattr(events, "_deltas", lambda before, after: pytest.fail("read a series"))
    assert advance(watch, second, 1.0) == []
    assert watch.previous.get(specs.WS_RTT.count_sample) == 99.0  # the history's counts move on


def test_a_told_series_that_leads_no_more_gets_no_shortcut():
    """A layout where a told series comes after another (not as REMEMBERED lays them out) has no
    leading span to compare: the shortcut says no rather than compare the wrong values."""
    snap = Snapshot("a")
    snap.series = {specs.WS_RTT.count_sample: {"": 1.0}, specs.TRIGGERS.sample: {"SPOT": 1.0}}
    remembered = snap.only([specs.WS_RTT.count_sample, specs.TRIGGERS.sample])
    assert not remembered.agrees(remembered, TOLD)
    assert snap.only(REMEMBERED).agrees(snap.only(REMEMBERED), TOLD)
