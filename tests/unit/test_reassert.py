"""The re-assert decision core: examples of each rule, then properties that hold whatever it is fed."""

from __future__ import annotations

import json
import math

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exporter.bybit.models import DcpSetting, set_dcp_request
from exporter.dcp import MAX_WINDOW, MIN_WINDOW, PRODUCTS
from exporter.monitor.reassert import (
    CONTENTION_PERIOD_SECONDS,
    CONTENTION_QUIET_SECONDS,
    CONTENTION_STRIKES,
    Blocked,
    Contended,
    DifferentWindow,
    DryRun,
    Event,
    InSync,
    NotEnabled,
    Reasserter,
    Resumed,
    SetWindow,
    Verified,
    VerifyFailed,
    Wait,
    drift_of,
)


def on(**windows: int) -> dict[str, DcpSetting]:
    return {p: DcpSetting(p, "ON", w) for p, w in windows.items()}


# --- drift ---------------------------------------------------------------------------


def test_drift_kinds():
    reported = on(DERIVATIVES=10, SPOT=20) | {"OPTIONS": DcpSetting("OPTIONS", "OFF", 10)}
    assert drift_of("DERIVATIVES", 10, reported) == InSync("DERIVATIVES", 10)
    assert drift_of("SPOT", 10, reported) == DifferentWindow("SPOT", 20, 10)
    assert drift_of("OPTIONS", 10, reported) == NotEnabled("OPTIONS", 10, "OFF")
    assert drift_of("OPTIONS", 10, on(SPOT=10)) == NotEnabled("OPTIONS", 10, None)
    assert [d.kind for d in (InSync("X", 3), DifferentWindow("X", 3, 4), NotEnabled("X", 3))] == [
        "in_sync",
        "different_window",
        "not_enabled",
    ]


def test_only_desired_products_are_considered():
    core = Reasserter({"DERIVATIVES": 10}, "enforce", 10)
    decision = core.decide(on(DERIVATIVES=10, SPOT=99, OPTIONS=5), now=0)
    assert set(decision.drift) == {"DERIVATIVES"}
    assert decision.actions == ()


@pytest.mark.parametrize("bad", [2, 301, 0, -5, 10.5, "10", True, None])
def test_desired_window_outside_bybit_range_is_refused(bad):
    with pytest.raises(ValueError, match="SPOT"):
        Reasserter({"SPOT": bad}, "enforce", 10)


def test_bad_policy_and_settle_are_refused():
    with pytest.raises(ValueError, match="policy"):
        Reasserter({}, "always", 10)
    with pytest.raises(ValueError, match="settle"):
        Reasserter({}, "enforce", 0)


def test_set_request_always_names_the_product():
    assert set_dcp_request("DERIVATIVES", 15) == (
        "POST",
        "/v5/order/disconnected-cancel-all",
        '{"product":"DERIVATIVES","timeWindow":15}',
    )


# --- enforce ---------------------------------------------------------------------------


def test_enforce_sets_waits_settle_then_verifies():
    core = Reasserter({"DERIVATIVES": 10, "SPOT": 10}, "enforce", 10)
    d = core.decide(on(DERIVATIVES=30, SPOT=10), now=100)
    assert d.actions == (SetWindow("DERIVATIVES", 10, 30),)
    assert d.drift["DERIVATIVES"] == DifferentWindow("DERIVATIVES", 30, 10)
    assert d.changed == {"DERIVATIVES", "SPOT"}

    # while the answer is outstanding, and during settle, no second set
    assert core.decide(on(DERIVATIVES=30, SPOT=10), now=101).actions == (Wait("DERIVATIVES", "in_flight"),)
    assert core.record_result("DERIVATIVES", now=101) is None
    d = core.decide(on(DERIVATIVES=30, SPOT=10), now=105)
    assert d.actions == (Wait("DERIVATIVES", "settling", 110),)
    assert d.changed == frozenset()

    d = core.decide(on(DERIVATIVES=10, SPOT=10), now=110)
    assert d.events == (Verified("DERIVATIVES", 10),)
    assert d.actions == ()
    assert core.failures("DERIVATIVES") == 0
    # the next drift is handled at once again
    assert core.decide(on(DERIVATIVES=5, SPOT=10), now=111).sets() == [SetWindow("DERIVATIVES", 10, 5)]


def test_no_set_when_bybit_already_reports_the_desired_window():
    """Two replicas with one desired state: the second sees the first's set and does nothing."""
    a = Reasserter({"SPOT": 10}, "enforce", 10)
    b = Reasserter({"SPOT": 10}, "enforce", 10)
    assert a.decide(on(SPOT=20), now=0).sets() == [SetWindow("SPOT", 10, 20)]
    a.record_result("SPOT", now=0.1)
    # Bybit now reports 10; b never sets
    for t in range(1, 100, 7):
        assert b.decide(on(SPOT=10), now=t).actions == ()
    assert a.decide(on(SPOT=10), now=10).events == (Verified("SPOT", 10),)


def test_verification_failure_backs_off_exponentially_and_success_resets():
    # the backoff alone: contention (three undone sets stop the product) is tested below
    core = Reasserter({"SPOT": 10}, "enforce", 10, max_backoff=100, contention_strikes=100)
    now = 0.0
    waits = []
    for _ in range(6):
        d = core.decide(on(SPOT=20), now=now)
        (action,) = d.actions
        if isinstance(action, Wait):
            now = action.until
            continue
        assert isinstance(action, SetWindow)
        core.record_result("SPOT", now=now)
        now += 10
        d = core.decide(on(SPOT=20), now=now)  # still 20 after settle: failed
        (event,) = d.events
        assert isinstance(event, VerifyFailed)
        waits.append(event.retry_at - now)
        now = event.retry_at
    assert waits == [20, 40, 80, 100, 100, 100][: len(waits)]
    assert len(waits) >= 4
    assert core.failures("SPOT") == len(waits)
    # one good set resets the count
    (s,) = core.decide(on(SPOT=20), now=now).sets()
    core.record_result("SPOT", now=now)
    assert core.decide(on(SPOT=10), now=now + 10).events == (Verified("SPOT", 10),)
    assert core.failures("SPOT") == 0


def test_error_answer_backs_off():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    assert core.decide(on(SPOT=20), now=0).sets()
    failed = core.record_result("SPOT", now=1, error_code="10016")
    assert failed.failures == 1 and failed.retry_at == 21 and not failed.blocked
    assert core.decide(on(SPOT=20), now=20).actions == (Wait("SPOT", "backoff", 21),)
    assert core.decide(on(SPOT=20), now=21).sets() == [SetWindow("SPOT", 10, 20)]


def test_backoff_is_capped_at_thirty_minutes_by_default():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    assert [core.backoff(n) for n in (1, 2, 3, 7, 8, 50, 10_000)] == [20, 40, 80, 1280, 1800, 1800, 1800]


@pytest.mark.parametrize("code", ["10003", "10004", 10005])
def test_auth_or_permission_error_blocks_the_account(code):
    core = Reasserter({"SPOT": 10, "DERIVATIVES": 10}, "enforce", 10)
    assert len(core.decide(on(SPOT=20, DERIVATIVES=20), now=0).sets()) == 2
    failed = core.record_result("SPOT", now=1, error_code=code)
    assert failed.blocked and core.blocked and core.blocked_code == str(code)
    core.record_result("DERIVATIVES", now=1, error_code=code)
    for t in (100, 10_000, 1e7):
        d = core.decide(on(SPOT=20, DERIVATIVES=20), now=t)
        assert d.sets() == []
        assert Blocked("SPOT", str(code)) in d.actions
    # a new core (config or credentials changed) starts again
    assert len(Reasserter({"SPOT": 10}, "enforce", 10).decide(on(SPOT=20), now=0).sets()) == 1


def test_not_enabled_product_is_tried_first_then_backed_off_never_looped():
    """OPTIONS is not listed; each attempt answers 10001. Over two hours with a 30 s poll, few sets."""
    core = Reasserter({"OPTIONS": 10}, "enforce", 10)
    set_times = []
    t = 0.0
    while t <= 7200:
        decision = core.decide({}, now=t)
        assert decision.drift["OPTIONS"] == NotEnabled("OPTIONS", 10)
        for s in decision.sets():
            set_times.append(t)
            core.record_result(s.product, now=t + 0.2, error_code="10001")
        t += 30
    assert set_times[0] == 0
    gaps = [b - a for a, b in zip(set_times, set_times[1:])]
    assert all(b >= a for a, b in zip(gaps, gaps[1:]))  # never faster than before
    # 20, 40, 80, ... 1280, then every 1800 s: about a dozen sets, not 240
    assert len(set_times) <= 12
    assert core.failures("OPTIONS") == len(set_times)


def test_not_enabled_product_accepted_but_still_absent_backs_off_too():
    core = Reasserter({"OPTIONS": 10}, "enforce", 10)
    sends = 0
    for t in range(0, 3600, 5):
        for _ in core.decide({}, now=t).sets():
            sends += 1
            core.record_result("OPTIONS", now=t)
    assert 3 <= sends <= 10


# --- one writer, or none ------------------------------------------------------------


def fight(core: Reasserter, now: float, cycles: int, gap: float = 60.0) -> tuple[list[Event], int]:
    """``cycles`` times: Bybit shows 20 (another writer's), the core may set 10, Bybit applies it
    (seen at the settle time); ``gap`` later the other writer has put 20 back. Returns every
    event and the number of sets."""
    events: list[Event] = []
    sets = 0
    for k in range(cycles):
        t = now + k * gap
        d = core.decide(on(SPOT=20), now=t)
        events += d.events
        for _ in d.sets():
            sets += 1
            core.record_result("SPOT", now=t)
            events += core.decide(on(SPOT=10), now=t + 10).events
    return events, sets


def test_sets_undone_twice_in_ten_minutes_then_holding_stop_the_product_until_quiet():
    """Undone, set again, undone, set again: the third set holds because the other writer has just
    stood down (it saw three undoings); this one stops too rather than claim the window."""
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    events, sets = fight(core, 0.0, CONTENTION_STRIKES + 2)
    assert sets == CONTENTION_STRIKES
    assert events[:-1] == [Verified("SPOT", 10)] * CONTENTION_STRIKES
    assert events[-1] == Contended("SPOT", CONTENTION_STRIKES - 1, InSync("SPOT", 10))
    assert core.contended("SPOT")
    d = core.decide(on(SPOT=20), now=CONTENTION_STRIKES * 60.0 + 65)
    assert d.actions == (Blocked("SPOT", "contended", "contended"),)
    blocked_at = (CONTENTION_STRIKES - 1) * 60.0 + 10
    # the other writer keeps the window at 20: nothing is sent for as long as it holds it
    for t in range(int(blocked_at) + 60, int(blocked_at + CONTENTION_QUIET_SECONDS), 30):
        d = core.decide(on(SPOT=20), now=t)
        assert not d.sets() and not d.events
    quiet_from = CONTENTION_STRIKES * 60.0  # 20 first seen after the block (the fight's 4th cycle)
    # the window stayed unchanged for the quiet time: sets may resume
    d = core.decide(on(SPOT=20), now=quiet_from + CONTENTION_QUIET_SECONDS)
    assert d.events == (Resumed("SPOT", CONTENTION_QUIET_SECONDS),)
    assert d.sets() and not core.contended("SPOT")


def test_a_window_still_changing_keeps_the_product_stopped():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    fight(core, 0.0, CONTENTION_STRIKES + 1)
    assert core.contended("SPOT")
    # the other writer flips between 20 and 30 every 10 minutes: never quiet for 15, never a set
    for i, t in enumerate(range(300, 300 + 4 * 3600, 30)):
        assert not core.decide(on(SPOT=20 if (i // 20) % 2 else 30), now=t).sets()
    assert core.contended("SPOT")


def test_sets_undone_less_often_than_the_period_are_not_contention():
    """Someone changes the window in the web UI every half hour: each is restored, none stops it."""
    assert CONTENTION_PERIOD_SECONDS < 1800
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    events, sets = fight(core, 0.0, 10, gap=1800.0)
    assert sets == 10 and events == [Verified("SPOT", 10)] * 10 and not core.contended("SPOT")


def test_a_restart_resumes_at_once():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    fight(core, 0.0, CONTENTION_STRIKES + 1)
    assert core.contended("SPOT")
    assert Reasserter({"SPOT": 10}, "enforce", 10).decide(on(SPOT=20), now=300).sets()


def test_verifications_that_keep_showing_another_window_are_contention_too():
    """Two writers whose sets cross within the settle time: each verification sees the other's
    window. Three of them and the core stands down as well (so does a Bybit that accepts sets
    and never applies them: writing more would not help either)."""
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    now, sets = 0.0, 0
    while now < 3600 and not core.contended("SPOT"):
        for _ in core.decide(on(SPOT=20), now=now).sets():
            sets += 1
            core.record_result("SPOT", now=now)
        now += 5
    assert core.contended("SPOT") and sets == CONTENTION_STRIKES
    assert now < CONTENTION_PERIOD_SECONDS


def test_clock_stepping_back_does_not_shorten_settle():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    core.decide(on(SPOT=20), now=1000)
    core.record_result("SPOT", now=1000)
    assert core.decide(on(SPOT=20), now=5).actions == (Wait("SPOT", "settling", 1010),)
    assert core.decide(on(SPOT=20), now=1005).sets() == []


def test_failed_poll_decides_nothing():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    core.decide(on(SPOT=20), now=0)
    core.record_result("SPOT", now=0)
    d = core.decide(None, now=50)
    assert d.drift == {} and d.actions == () and d.events == ()
    # the set is verified by the next good observation instead
    assert core.decide(on(SPOT=10), now=60).events == (Verified("SPOT", 10),)


def test_result_for_a_set_never_handed_out_is_ignored():
    core = Reasserter({"SPOT": 10}, "enforce", 10)
    assert core.record_result("SPOT", now=0, error_code="10016") is None
    assert core.record_result("OPTIONS", now=0) is None
    assert core.failures("SPOT") == 0
    assert core.decide(on(SPOT=20), now=0).sets()


# --- off and dry-run -------------------------------------------------------------------


def test_off_reports_drift_and_asks_for_nothing():
    core = Reasserter({"SPOT": 10, "OPTIONS": 10}, "off", 10)
    d = core.decide(on(SPOT=20), now=0)
    assert d.drift == {"SPOT": DifferentWindow("SPOT", 20, 10), "OPTIONS": NotEnabled("OPTIONS", 10)}
    assert d.actions == ()


def test_dry_run_describes_the_request_once_per_change():
    core = Reasserter({"SPOT": 10, "OPTIONS": 10}, "dry-run", 10)
    d = core.decide(on(SPOT=20), now=0)
    assert set(d.actions) == {DryRun("SPOT", 20, 10), DryRun("OPTIONS", None, 10)}
    method, path, body = DryRun("SPOT", 20, 10).request()
    assert (method, path, json.loads(body)) == (
        "POST",
        "/v5/order/disconnected-cancel-all",
        {"product": "SPOT", "timeWindow": 10},
    )
    assert core.decide(on(SPOT=20), now=30).actions == ()  # unchanged: not repeated every poll
    assert core.decide(on(SPOT=25), now=60).actions == (DryRun("SPOT", 25, 10),)
    assert core.decide(on(SPOT=10), now=90).actions == ()
    assert core.decide(on(SPOT=20), now=120).actions == (DryRun("SPOT", 20, 10),)


# --- properties ------------------------------------------------------------------------

# answers to sets: mostly accepted, often a retryable error, rarely a credential error (which ends the story)
codes = st.sampled_from(
    [None] * 6 + ["10001", "10006", "10016", "timeout", "network"] * 2 + ["10003", "10004", "10005", "10010"]
)


@st.composite
def scenarios(draw):
    desired = draw(
        st.dictionaries(st.sampled_from(PRODUCTS), st.integers(MIN_WINDOW, MAX_WINDOW), min_size=1, max_size=3)
    )
    policy = draw(st.sampled_from(["off", "dry-run", "enforce", "enforce"]))
    settle = draw(st.sampled_from([0.5, 1.0, 10.0, 60.0]))
    windows = st.one_of(st.sampled_from(sorted(set(desired.values())) or [10]), st.integers(-5, 400))
    setting = st.tuples(st.sampled_from(["ON", "ON", "OFF"]), windows)
    listed = st.dictionaries(st.sampled_from(PRODUCTS + ("FUTURES",)), setting, max_size=4)
    observation = st.one_of(st.none(), listed, listed, listed)  # a failed poll now and then
    step = st.one_of(
        # time in units of the settle period (most interesting near it), now and then a long jump
        st.tuples(st.just("advance"), st.one_of(st.floats(0, 3), st.floats(0, 3), st.floats(0, 400))),
        st.tuples(st.just("observe"), observation),
        st.tuples(st.just("result"), st.integers(0, 5), codes),
    )
    return desired, policy, settle, draw(st.lists(step, min_size=3, max_size=80))


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_safety_properties_hold_for_any_sequence(scenario):
    desired, policy, settle, steps = scenario
    core = Reasserter(desired, policy, settle)
    now = 1_000.0
    last_set: dict[str, float] = {}
    outstanding: set[str] = set()
    auth_failed = False
    for step in steps:
        if step[0] == "advance":
            now += step[1] * settle
        elif step[0] == "result":
            # mostly the answer to a set that is outstanding, sometimes a stray one
            _, index, code = step
            candidates = sorted(outstanding) if outstanding and index < 4 else list(PRODUCTS)
            product = candidates[index % len(candidates)]
            core.record_result(product, now, code)
            outstanding.discard(product)
            auth_failed |= code in ("10003", "10004", "10005", "10010")
        else:
            raw = step[1]
            reported = None if raw is None else {p: DcpSetting(p, s, w) for p, (s, w) in raw.items()}
            decision = core.decide(reported, now)
            if reported is None:
                assert decision.actions == () and decision.events == ()
                continue
            assert set(decision.drift) == set(desired)
            for action in decision.actions:
                assert action.product in desired  # never a product without a desired window
                if policy == "off":
                    pytest.fail(f"off asked for {action}")
                if isinstance(action, DryRun):
                    assert policy == "dry-run"
                    assert action.new == desired[action.product]
                if not isinstance(action, SetWindow):
                    continue
                assert policy == "enforce"  # nothing is sent in off or dry-run
                assert not auth_failed  # nothing after an auth failure
                assert MIN_WINDOW <= action.window <= MAX_WINDOW
                assert action.window == desired[action.product]
                got = reported.get(action.product)
                assert not (got is not None and got.on and got.window == action.window)  # no set when in sync
                assert action.product not in outstanding  # one set at a time
                if action.product in last_set:
                    assert now - last_set[action.product] >= settle  # at most one set per settle period
                last_set[action.product] = now
                outstanding.add(action.product)
            for event in decision.events:
                assert event.product in desired
                assert now - last_set[event.product] >= settle  # verified only after the settle time
            if core.blocked:
                assert decision.sets() == []


@settings(max_examples=examples(150), deadline=None)
@given(
    desired=st.dictionaries(st.sampled_from(PRODUCTS), st.integers(MIN_WINDOW, MAX_WINDOW), min_size=1, max_size=3),
    start=st.dictionaries(st.sampled_from(PRODUCTS), st.integers(MIN_WINDOW, MAX_WINDOW), max_size=3),
    poll=st.sampled_from([1.0, 5.0, 30.0]),
)
def test_enforce_converges_on_an_honest_bybit(desired, start, poll):
    """A Bybit that applies every set: after one settle and one poll, every product is in sync."""
    bybit = {p: DcpSetting(p, "ON", w) for p, w in start.items()}
    core = Reasserter(desired, "enforce", 10)
    t = 0.0
    sends = 0
    for _ in range(math.ceil((10 + 2 * poll) / poll) + 1):
        for s in core.decide(dict(bybit), t).sets():
            sends += 1
            bybit[s.product] = DcpSetting(s.product, "ON", s.window)
            core.record_result(s.product, t)
        t += poll
    d = core.decide(dict(bybit), t)
    assert all(isinstance(x, InSync) for x in d.drift.values())
    assert sends == sum(1 for p, w in desired.items() if start.get(p) != w)


class ReassertMachine(RuleBasedStateMachine):
    """The same safety rules, explored step by step: hypothesis picks the next move knowing
    which sets are outstanding, so answers arrive for real sets and time moves around settle."""

    @initialize(
        desired=st.dictionaries(st.sampled_from(PRODUCTS), st.integers(MIN_WINDOW, MAX_WINDOW), min_size=1, max_size=3),
        policy=st.sampled_from(["off", "dry-run", "enforce", "enforce", "enforce"]),
        settle=st.sampled_from([0.5, 10.0, 60.0]),
    )
    def setup(self, desired, policy, settle):
        self.desired, self.policy, self.settle = desired, policy, settle
        self.core = Reasserter(desired, policy, settle)
        self.now = 0.0
        self.last_set: dict[str, float] = {}
        self.outstanding: list[str] = []
        self.auth_failed = False

    @rule(fraction=st.floats(0, 2.5))
    def advance(self, fraction):
        self.now += fraction * self.settle

    @rule(seconds=st.floats(0, 3600))
    def jump(self, seconds):
        self.now += seconds

    @rule(data=st.data())
    def observe(self, data):
        settings_ = {}
        for product in PRODUCTS:  # per product: in sync, another window, listed OFF, or absent
            kind = data.draw(st.sampled_from(["same", "same", "other", "off", "absent"]))
            wanted = self.desired.get(product, 10)
            if kind == "same":
                settings_[product] = DcpSetting(product, "ON", wanted)
            elif kind == "other":
                settings_[product] = DcpSetting(
                    product, "ON", data.draw(st.integers(1, 400).filter(lambda w: w != wanted))
                )
            elif kind == "off":
                settings_[product] = DcpSetting(product, "OFF", wanted)
        decision = self.core.decide(settings_, self.now)
        for action in decision.actions:
            assert action.product in self.desired
            assert self.policy != "off"
            if isinstance(action, SetWindow):
                assert self.policy == "enforce" and not self.auth_failed
                assert action.window == self.desired[action.product] and MIN_WINDOW <= action.window <= MAX_WINDOW
                got = settings_.get(action.product)
                assert not (got and got.on and got.window == action.window)
                assert action.product not in self.outstanding
                if action.product in self.last_set:
                    assert self.now - self.last_set[action.product] >= self.settle
                self.last_set[action.product] = self.now
                self.outstanding.append(action.product)
        for event in decision.events:  # a set is verified only after the settle time
            assert event.product in self.desired
            assert self.now - self.last_set[event.product] >= self.settle

    @precondition(lambda self: bool(self.outstanding))
    @rule(data=st.data(), code=codes)
    def answer(self, data, code):
        product = data.draw(st.sampled_from(self.outstanding))
        self.outstanding.remove(product)
        self.core.record_result(product, self.now, code)
        self.auth_failed |= code in ("10003", "10004", "10005", "10010")

    @invariant()
    def blocked_only_after_auth_failure(self):
        if hasattr(self, "core"):
            assert self.core.blocked == self.auth_failed


ReassertMachine.TestCase.settings = settings(max_examples=examples(200), stateful_step_count=40, deadline=None)
test_safety_properties_step_by_step = ReassertMachine.TestCase
