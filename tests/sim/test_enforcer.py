"""The re-assert Enforcer: first with a small in-memory REST stand-in and an injected clock,
then against the simulator over loopback with the real REST client."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import helpers
import pytest
from virtual_clock import VirtualClock

from exporter.bybit.errors import AuthError, ParamError, error_for
from exporter.bybit.models import DcpSetting
from exporter.bybit.rest import RestClient
from exporter.metrics import Metrics
from exporter.monitor.enforcer import Enforcer
from exporter.simulator import Simulator

SET_PATH = "/v5/order/disconnected-cancel-all"
ACCOUNT = "desk-a"


def still_clock() -> VirtualClock:
    """Time stands still until a test jumps it or the enforcer sleeps (which moves it at once)."""
    return VirtualClock(1_000_000.0, auto_advance=True)


class FakeBybit:
    """Same method names as RestClient; applies sets at once unless told to fail."""

    def __init__(self, **windows: int) -> None:
        self.dcp = dict(windows)
        self.set_calls: list[tuple[str, int]] = []
        self.queries = 0
        self.fail_with: str | None = None
        self.gate: asyncio.Event | None = None

    async def set_dcp(self, product: str, window: int) -> None:
        self.set_calls.append((product, window))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise error_for(self.fail_with, "refused", "set_dcp")
        if product not in self.dcp:
            raise ParamError("10001", "DCP is not enabled for this product", "set_dcp")
        self.dcp[product] = window

    async def query_dcp_info(self) -> dict[str, DcpSetting]:
        self.queries += 1
        return reported(**self.dcp)


def reported(**windows: int) -> dict[str, DcpSetting]:
    return {p: DcpSetting(p, "ON", w) for p, w in windows.items()}


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


async def settled(enforcer: Enforcer, timeout: float = 5.0) -> None:
    """Wait (bounded) until the enforcer's background tasks have finished."""
    deadline = time.monotonic() + timeout
    while enforcer.busy:
        assert time.monotonic() < deadline, "re-assert task did not finish"
        await asyncio.sleep(0.001)


def make(policy: str, desired: dict[str, int], bybit: FakeBybit, clock: VirtualClock, **kw) -> tuple[Enforcer, Metrics]:
    metrics = Metrics()
    metrics.add_account(ACCOUNT, environment="mainnet", mode="observer", desired_windows=desired)
    enforcer = Enforcer(ACCOUNT, desired, policy, bybit, metrics, settle_seconds=10, clock=clock, **kw)
    return enforcer, metrics


# --- with the in-memory stand-in ---------------------------------------------------------


async def test_enforce_sets_once_waits_settle_and_verifies(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = still_clock(), FakeBybit(DERIVATIVES=30, SPOT=10)
    enforcer, metrics = make("enforce", {"DERIVATIVES": 10, "SPOT": 10}, bybit, clock)
    start = clock.time()
    enforcer.take_poll(reported(**bybit.dcp))
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_window_drift", product="SPOT") == 0
    assert sample(metrics, "bybit_dcp_desired_window_seconds", product="DERIVATIVES") == 10
    # polls arriving while the task runs do not start a second set
    enforcer.take_poll(reported(DERIVATIVES=30, SPOT=10))
    await settled(enforcer)
    assert bybit.set_calls == [("DERIVATIVES", 10)]
    assert bybit.queries == 1  # the verification
    assert clock.time() - start >= 10  # it waited the settle time before verifying
    assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="DERIVATIVES") == 0
    assert sample(metrics, "bybit_dcp_reassert_last_success_timestamp_seconds", product="DERIVATIVES") == clock.time()
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
    audit = [r for r in caplog.records if r.getMessage() == "DCP window set (audit)"]
    assert len(audit) == 1
    a = audit[0]
    assert (a.account, a.product, a.old, a.new, a.result) == (ACCOUNT, "DERIVATIVES", "30", 10, "ok")
    # in sync now: nothing more is sent, however often it polls
    for _ in range(5):
        clock.jump(30)
        enforcer.take_poll(reported(**bybit.dcp))
    await settled(enforcer)
    assert bybit.set_calls == [("DERIVATIVES", 10)]
    await enforcer.aclose()


async def test_drift_is_logged_once_per_change_with_its_kind(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = still_clock(), FakeBybit()
    enforcer, metrics = make("off", {"DERIVATIVES": 10, "OPTIONS": 10}, bybit, clock)
    for _ in range(3):
        enforcer.take_poll(reported(DERIVATIVES=20))
    drift = [r for r in caplog.records if r.getMessage().startswith("DCP window drift")]
    assert sorted((r.product, r.drift) for r in drift) == [
        ("DERIVATIVES", "different_window"),
        ("OPTIONS", "not_enabled"),
    ]
    assert sample(metrics, "bybit_dcp_window_drift", product="OPTIONS") == 1
    enforcer.take_poll(reported(DERIVATIVES=10))
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
    assert [r.product for r in caplog.records if r.getMessage() == "DCP window in sync again"] == ["DERIVATIVES"]
    assert bybit.set_calls == [] and bybit.queries == 0


async def test_dry_run_logs_the_exact_request_and_sends_nothing(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = still_clock(), FakeBybit(SPOT=25)
    enforcer, metrics = make("dry-run", {"SPOT": 15}, bybit, clock)
    for _ in range(4):
        enforcer.take_poll(reported(SPOT=25))
        clock.jump(30)
    await settled(enforcer)
    assert bybit.set_calls == [] and bybit.queries == 0
    (line,) = [r for r in caplog.records if r.getMessage() == "re-assert dry-run: would send"]
    assert (line.method, line.path) == ("POST", SET_PATH)
    assert line.body == '{"product":"SPOT","timeWindow":15}'
    assert json.loads(line.body) == {"product": "SPOT", "timeWindow": 15}
    assert (line.old, line.new) == ("25", 15)
    assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="SPOT") == 0


@pytest.mark.parametrize("code", ["10003", "10004", "10005"])
async def test_auth_error_blocks_the_account_and_is_visible(caplog, code):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = still_clock(), FakeBybit(SPOT=20, DERIVATIVES=20)
    bybit.fail_with = code
    enforcer, metrics = make("enforce", {"SPOT": 10, "DERIVATIVES": 10}, bybit, clock)
    enforcer.take_poll(reported(SPOT=20, DERIVATIVES=20))
    await settled(enforcer)
    assert len(bybit.set_calls) == 2  # both products tried once, concurrently
    assert enforcer.blocked
    assert sample(metrics, "bybit_dcp_reassert_blocked", product="DERIVATIVES", reason="credentials") == 1
    for _ in range(50):
        clock.jump(600)
        enforcer.take_poll(reported(SPOT=20, DERIVATIVES=20))
    await settled(enforcer)
    assert len(bybit.set_calls) == 2
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="SPOT") == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].code == code
    assert all(r.result == "error" for r in caplog.records if r.getMessage() == "DCP window set (audit)")


async def test_failures_back_off_and_are_counted():
    clock, bybit = still_clock(), FakeBybit(SPOT=20)
    bybit.fail_with = "10016"
    enforcer, metrics = make("enforce", {"SPOT": 10}, bybit, clock)
    for _ in range(120):  # an hour of 30 s polls
        enforcer.take_poll(reported(SPOT=20))
        await settled(enforcer)
        clock.jump(30)
    # at 0, then 20/40/80/160/320/640/1280 s apart (rounded up to polls): 7 within the hour
    assert 5 <= len(bybit.set_calls) <= 8
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="SPOT") == len(bybit.set_calls)
    assert not enforcer.blocked


async def test_aclose_cancels_a_running_set():
    clock, bybit = still_clock(), FakeBybit(SPOT=20)
    bybit.gate = asyncio.Event()  # the set never answers
    enforcer, _ = make("enforce", {"SPOT": 10}, bybit, clock)
    enforcer.take_poll(reported(SPOT=20))
    await asyncio.sleep(0)
    assert enforcer.busy and bybit.set_calls == [("SPOT", 10)]
    await asyncio.wait_for(enforcer.aclose(), 2)
    assert not enforcer.busy


async def test_auth_failure_on_the_poll_blocks_too(caplog):
    clock, bybit = still_clock(), FakeBybit(SPOT=20)
    enforcer, metrics = make("enforce", {"SPOT": 10}, bybit, clock)
    enforcer.block(AuthError("10003").code)
    enforcer.take_poll(reported(SPOT=20))
    await settled(enforcer)
    assert bybit.set_calls == []
    assert sample(metrics, "bybit_dcp_reassert_blocked", product="SPOT", reason="credentials") == 1
    assert sample(metrics, "bybit_dcp_reassert_blocked", product="SPOT", reason="contended") == 0


# --- against the simulator, with the real REST client ------------------------------------

KEY = "reassert-key"


@pytest.fixture
async def sim():
    async with Simulator(settle_delay=0.1, rate_limit_per_second=1000) as s:
        s.add_account(KEY, name=ACCOUNT)
        yield s


def rest_client(sim: Simulator, session: aiohttp.ClientSession, metrics: Metrics, **kw) -> RestClient:
    return helpers.rest_client(session, sim.rest_url, metrics, KEY, sim.account(KEY).api_secret, account=ACCOUNT, **kw)


def set_requests(sim: Simulator) -> list[dict]:
    """Every set the simulator received, accepted or not."""
    return [c for c in sim.account(KEY).rest_calls if c["method"] == "POST" and c["path"] == SET_PATH]


class Poller:
    """The account supervisor's poll loop in miniature: query, hand to the enforcer, wait."""

    def __init__(self, rest: RestClient, enforcer: Enforcer, interval: float) -> None:
        self.rest, self.enforcer, self.interval = rest, enforcer, interval
        self.polls = 0
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.enforcer.take_poll(await self.rest.query_dcp_info())
            self.polls += 1
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Poller:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.enforcer.aclose()

    async def until(self, condition, timeout: float) -> float:
        """Seconds until ``condition()`` held; fails after ``timeout``."""
        start = time.monotonic()
        while not condition():
            assert not self.task.done(), self.task.exception()
            assert time.monotonic() - start < timeout, "condition not reached in time"
            await asyncio.sleep(0.01)
        return time.monotonic() - start

    async def polls_more(self, n: int, timeout: float = 10.0) -> None:
        target = self.polls + n
        await self.until(lambda: self.polls >= target, timeout)


def real_metrics(desired: dict[str, int]) -> Metrics:
    metrics = Metrics()
    metrics.add_account(ACCOUNT, environment="mainnet", mode="observer", desired_windows=desired)
    return metrics


async def test_window_changed_behind_our_back_is_restored_and_verified(sim, session):
    settle, poll = 0.3, 0.2
    desired = {"DERIVATIVES": 10, "SPOT": 10}
    metrics = real_metrics(desired)
    rest = rest_client(sim, session, metrics)
    enforcer = Enforcer(ACCOUNT, desired, "enforce", rest, metrics, settle_seconds=settle)
    acct = sim.account(KEY)
    async with Poller(rest, enforcer, poll) as poller:
        await poller.polls_more(3)
        assert set_requests(sim) == []  # in sync: nothing is sent

        sim.set_dcp(KEY, "DERIVATIVES", 30)
        verified = lambda: sample(metrics, "bybit_dcp_reassert_last_success_timestamp_seconds", product="DERIVATIVES")
        elapsed = await poller.until(verified, timeout=settle + poll + 3)
        assert elapsed < settle + poll + 0.5  # within one poll to notice plus the settle time
        assert elapsed >= settle  # it waited the settle time before calling it verified
        assert acct.dcp["DERIVATIVES"] == 10
        assert acct.set_dcp_calls == [("DERIVATIVES", 10)]
        assert [c["body"] for c in set_requests(sim)] == [{"product": "DERIVATIVES", "timeWindow": 10}]
        assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
        assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="DERIVATIVES") == 1
        assert sample(metrics, "bybit_dcp_reassert_failures_total", product="DERIVATIVES") == 0

        await poller.polls_more(4)
        assert acct.set_dcp_calls == [("DERIVATIVES", 10)]  # in sync again: no further sets


async def test_set_not_effective_after_settle_is_a_failure_then_resolves(session):
    """Bybit applies the window later than our settle time: the verification fails honestly,
    backs off, and since Bybit then reports the desired window no second set is sent."""
    async with Simulator(settle_delay=0.5, rate_limit_per_second=1000) as sim:
        sim.add_account(KEY, name=ACCOUNT, dcp={"SPOT": 20})
        metrics = real_metrics({"SPOT": 10})
        rest = rest_client(sim, session, metrics)
        enforcer = Enforcer(ACCOUNT, {"SPOT": 10}, "enforce", rest, metrics, settle_seconds=0.15)
        async with Poller(rest, enforcer, 0.1) as poller:
            await poller.until(lambda: sample(metrics, "bybit_dcp_reassert_failures_total", product="SPOT") == 1, 3)
            await poller.until(lambda: sample(metrics, "bybit_dcp_window_drift", product="SPOT") == 0, 3)
            await poller.polls_more(3)
        assert sim.account(KEY).set_dcp_calls == [("SPOT", 10)]
        assert sim.account(KEY).dcp["SPOT"] == 10


@pytest.mark.parametrize("policy", ["off", "dry-run"])
async def test_off_and_dry_run_send_nothing(sim, session, caplog, policy):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    sim.set_dcp(KEY, "SPOT", 30)
    sim.set_dcp(KEY, "DERIVATIVES", None)
    desired = {"SPOT": 10, "DERIVATIVES": 10}
    metrics = real_metrics(desired)
    rest = rest_client(sim, session, metrics)
    enforcer = Enforcer(ACCOUNT, desired, policy, rest, metrics, settle_seconds=0.05)
    async with Poller(rest, enforcer, 0.05) as poller:
        await poller.polls_more(8)
    assert sim.account(KEY).set_dcp_calls == []
    assert set_requests(sim) == []
    assert sample(metrics, "bybit_dcp_window_drift", product="SPOT") == 1
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="SPOT") == 0
    dry = sorted(r.body for r in caplog.records if r.getMessage() == "re-assert dry-run: would send")
    if policy == "dry-run":
        assert dry == ['{"product":"DERIVATIVES","timeWindow":10}', '{"product":"SPOT","timeWindow":10}']
    else:
        assert dry == []


async def test_permission_error_stops_retries_and_is_counted(sim, session, caplog):
    sim.force_error(SET_PATH, 10005, count=None)
    sim.set_dcp(KEY, "DERIVATIVES", 30)
    metrics = real_metrics({"DERIVATIVES": 10})
    rest = rest_client(sim, session, metrics)
    enforcer = Enforcer(ACCOUNT, {"DERIVATIVES": 10}, "enforce", rest, metrics, settle_seconds=0.05)
    async with Poller(rest, enforcer, 0.05) as poller:
        await poller.until(lambda: enforcer.blocked, 3)
        await poller.polls_more(20)  # 20 polls, 1 s: many settle periods and backoffs
    calls = set_requests(sim)
    assert len(calls) == 1 and calls[0]["ret_code"] == 10005
    assert sim.account(KEY).set_dcp_calls == []
    assert sample(metrics, "bybit_dcp_reassert_blocked", product="DERIVATIVES", reason="credentials") == 1
    assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_api_errors_total", endpoint="set_dcp", code="10005") == 1
    assert any(r.levelno == logging.ERROR and r.code == "10005" for r in caplog.records)
    assert sim.account(KEY).api_secret not in caplog.text


async def test_product_not_enabled_is_reported_and_backed_off(sim, session, caplog):
    """OPTIONS is not enabled on the account (Bybit answers 10001). Two hours of 30 s polls on a
    scaled clock: the first poll tries, later attempts come ever further apart."""
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock = still_clock()
    metrics = real_metrics({"OPTIONS": 10})
    rest = rest_client(sim, session, metrics)
    enforcer = Enforcer(ACCOUNT, {"OPTIONS": 10}, "enforce", rest, metrics, settle_seconds=10, clock=clock)
    start, attempt_times = clock.time(), []
    for _ in range(240):
        enforcer.take_poll(await rest.query_dcp_info())
        await settled(enforcer)
        if len(set_requests(sim)) > len(attempt_times):
            attempt_times.append(clock.time() - start)
        clock.jump(30)
    await enforcer.aclose()
    calls = set_requests(sim)
    assert len(calls) == len(attempt_times)
    assert all(c["ret_code"] == 10001 for c in calls)
    assert attempt_times[0] == 0
    gaps = [b - a for a, b in zip(attempt_times, attempt_times[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= 1800
    assert 5 <= len(calls) <= 12  # not 240
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="OPTIONS") == len(calls)
    assert sample(metrics, "bybit_dcp_window_drift", product="OPTIONS") == 1
    assert not enforcer.blocked
    reported = [r for r in caplog.records if r.getMessage() == "DCP window drift: product not enabled"]
    assert len(reported) == 1 and reported[0].reported == "not listed"


async def test_two_replicas_with_one_desired_state_do_not_fight(sim, session):
    desired = {"SPOT": 10}
    replicas = []
    for _ in range(2):
        metrics = real_metrics(desired)
        rest = rest_client(sim, session, metrics)
        enforcer = Enforcer(ACCOUNT, desired, "enforce", rest, metrics, settle_seconds=0.2)
        replicas.append((metrics, Poller(rest, enforcer, 0.1)))
    a, b = replicas[0][1], replicas[1][1]
    async with a, b:
        await a.polls_more(2)
        sim.set_dcp(KEY, "SPOT", 45)
        in_sync = lambda: all(sample(m, "bybit_dcp_window_drift", product="SPOT") == 0 for m, _ in replicas)
        await a.until(lambda: sim.account(KEY).set_dcp_calls and in_sync(), 3)
        await a.polls_more(10)
    calls = sim.account(KEY).set_dcp_calls
    assert 1 <= len(calls) <= 2 and set(calls) == {("SPOT", 10)}  # at most one each, same value
    assert sim.account(KEY).dcp["SPOT"] == 10


class AnswerLost(FakeBybit):
    """Bybit applies the set (or not), and its answer never comes: the exporter is stopped waiting."""

    def __init__(self, *, lands: bool, **windows: int) -> None:
        super().__init__(**windows)
        self.lands = lands

    async def set_dcp(self, product: str, window: int) -> None:
        self.set_calls.append((product, window))
        if self.lands:
            self.dcp[product] = window
        await asyncio.Event().wait()  # until the shutdown cancels it


@pytest.mark.parametrize("lands", [True, False], ids=["landed", "lost"])
async def test_a_set_in_flight_at_shutdown_is_logged_unknown_and_the_next_start_shows_its_outcome(caplog, lands):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    bybit = AnswerLost(lands=lands, DERIVATIVES=30)
    enforcer, _ = make("enforce", {"DERIVATIVES": 10}, bybit, still_clock())
    enforcer.take_poll(reported(**bybit.dcp))
    await helpers.eventually(lambda: bybit.set_calls, what="the set sent")
    await enforcer.aclose()  # SIGTERM: the fleet closes every enforcer
    unknown = [r for r in caplog.records if "outcome unknown" in r.getMessage()]
    assert len(unknown) == 1 and unknown[0].levelno == logging.WARNING
    assert (unknown[0].product, unknown[0].new, unknown[0].old, unknown[0].result) == (
        "DERIVATIVES",
        10,
        "30",
        "unknown",
    )
    assert not [r for r in caplog.records if r.getMessage() == "DCP window set (audit)"]  # no outcome claimed

    caplog.clear()
    restarted, metrics = make("off", {"DERIVATIVES": 10}, bybit, still_clock())
    restarted.take_poll(reported(**bybit.dcp))  # the next start's first poll
    messages = [r.getMessage() for r in caplog.records]
    if lands:
        assert "DCP window in sync at start" in messages
        assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
    else:
        assert "DCP window drift: Bybit reports a different window" in messages
        assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 1
    await restarted.aclose()


class TrackedRest:
    """The real REST client, counting the calls still waiting for an answer: with a virtual
    clock the test moves time on only once every socket has answered."""

    def __init__(self, rest: RestClient) -> None:
        self.rest, self.pending = rest, 0

    async def set_dcp(self, product: str, window: int) -> None:
        self.pending += 1
        try:
            await self.rest.set_dcp(product, window)
        finally:
            self.pending -= 1

    async def query_dcp_info(self) -> dict[str, DcpSetting]:
        self.pending += 1
        try:
            return await self.rest.query_dcp_info()
        finally:
            self.pending -= 1


async def answered(stacks: list[TrackedRest], timeout: float = 5.0) -> None:
    """Bounded: until no call of any stack waits for the simulator (and a few turns after).

    While a call waits, the loop sleeps a millisecond a turn, for the sockets; once none does,
    a few bare turns (each polls the sockets too) are enough for any task the last answer woke
    to make its next call. Most seconds of the contention test have no call at all: they cost
    a few turns of the loop, not milliseconds of waiting."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 5:
        assert time.monotonic() < deadline, "a REST call did not answer"
        idle = all(s.pending == 0 for s in stacks)
        await asyncio.sleep(0 if idle else 0.001)
        quiet = quiet + 1 if idle and all(s.pending == 0 for s in stacks) else 0


async def test_two_exporters_with_different_windows_write_a_few_times_then_both_stand_down(session, caplog):
    """Two exporters (two Enforcer stacks, each with its own REST client and metrics) want 10 s
    and 20 s on ONE simulated account, polling every 30 s, on a virtual clock shared with the
    simulator. Without the contention rule they flip the window for ever (each verification
    sees the other's window, each backoff ends in another set); with it each writes at most
    CONTENTION_STRIKES times, both stand down and say why, and neither writes again while the
    window stays where the last one left it."""
    from exporter.monitor.reassert import CONTENTION_QUIET_SECONDS, CONTENTION_STRIKES

    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock = VirtualClock()
    async with Simulator(clock=clock, rate_limit_per_second=1000) as sim:
        sim.add_account(KEY, name=ACCOUNT, dcp={"DERIVATIVES": 30})
        stacks = []
        for window, phase in ((10, 0), (20, 7)):
            metrics = real_metrics({"DERIVATIVES": window})
            rest = TrackedRest(rest_client(sim, session, metrics, clock=clock))
            enforcer = Enforcer(ACCOUNT, {"DERIVATIVES": window}, "enforce", rest, metrics, clock=clock)
            stacks.append((metrics, rest, enforcer, phase))
        rests = [rest for _, rest, _, _ in stacks]
        set_times: list[float] = []
        try:
            for second in range(int(CONTENTION_QUIET_SECONDS) - 60):  # ~14 minutes, 1 s steps
                for _, rest, enforcer, phase in stacks:
                    if second % 30 == phase:
                        enforcer.take_poll(await rest.query_dcp_info())
                await answered(rests)
                set_times += [clock.monotonic()] * (len(sim.account(KEY).set_dcp_calls) - len(set_times))
                await clock.advance(1)
                await answered(rests)
        finally:
            for _, _, enforcer, _ in stacks:
                await enforcer.aclose()

        calls = sim.account(KEY).set_dcp_calls
        assert {w for _, w in calls} == {10, 20}  # both wrote ...
        assert len(calls) <= 2 * CONTENTION_STRIKES  # ... a bounded number of times
        assert set_times[-1] < 300  # all within the first five minutes; none in the nine after
        for metrics, _, enforcer, _ in stacks:
            assert enforcer.contended("DERIVATIVES")
            assert sample(metrics, "bybit_dcp_reassert_blocked", product="DERIVATIVES", reason="contended") == 1
            assert sample(metrics, "bybit_dcp_reassert_blocked", product="DERIVATIVES", reason="credentials") == 0
        stood_down = [
            r for r in caplog.records if r.levelno == logging.ERROR and getattr(r, "reason", "") == "contended"
        ]
        assert sorted(r.desired for r in stood_down) == [10, 20]  # each says so once
        assert all("find the other writer" in r.getMessage() for r in stood_down)
