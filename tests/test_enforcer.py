"""The re-assert Enforcer: first with a small in-memory REST stand-in and an injected clock,
then against the simulator over loopback with the real REST client."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from exporter.bybit.errors import AuthError, ParamError, error_for
from exporter.bybit.models import DcpSetting
from exporter.metrics import Metrics
from exporter.monitor.enforcer import Enforcer

SET_PATH = "/v5/order/disconnected-cancel-all"
ACCOUNT = "desk-a"


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


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


def make(policy: str, desired: dict[str, int], bybit: FakeBybit, clock: FakeClock, **kw) -> tuple[Enforcer, Metrics]:
    metrics = Metrics()
    metrics.add_account(ACCOUNT, environment="mainnet", mode="observer", desired_windows=desired)
    enforcer = Enforcer(ACCOUNT, desired, policy, bybit, metrics, settle_seconds=10, clock=clock, sleep=clock.sleep, **kw)
    return enforcer, metrics


# --- with the in-memory stand-in ---------------------------------------------------------


async def test_enforce_sets_once_waits_settle_and_verifies(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = FakeClock(), FakeBybit(DERIVATIVES=30, SPOT=10)
    enforcer, metrics = make("enforce", {"DERIVATIVES": 10, "SPOT": 10}, bybit, clock)
    start = clock.t
    enforcer.observe(reported(**bybit.dcp))
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_window_drift", product="SPOT") == 0
    assert sample(metrics, "bybit_dcp_desired_window_seconds", product="DERIVATIVES") == 10
    # polls arriving while the task runs do not start a second set
    enforcer.observe(reported(DERIVATIVES=30, SPOT=10))
    await settled(enforcer)
    assert bybit.set_calls == [("DERIVATIVES", 10)]
    assert bybit.queries == 1  # the verification
    assert clock.t - start >= 10  # it waited the settle time before verifying
    assert sample(metrics, "bybit_dcp_reassert_attempts_total", product="DERIVATIVES") == 1
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="DERIVATIVES") == 0
    assert sample(metrics, "bybit_dcp_reassert_last_success_timestamp_seconds", product="DERIVATIVES") == clock.t
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
    audit = [r for r in caplog.records if r.getMessage() == "DCP window set (audit)"]
    assert len(audit) == 1
    a = audit[0]
    assert (a.account, a.product, a.old, a.new, a.result) == (ACCOUNT, "DERIVATIVES", "30", 10, "ok")
    # in sync now: nothing more is sent, however often it polls
    for _ in range(5):
        clock.t += 30
        enforcer.observe(reported(**bybit.dcp))
    await settled(enforcer)
    assert bybit.set_calls == [("DERIVATIVES", 10)]
    await enforcer.aclose()


async def test_drift_is_logged_once_per_change_with_its_kind(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = FakeClock(), FakeBybit()
    enforcer, metrics = make("off", {"DERIVATIVES": 10, "OPTIONS": 10}, bybit, clock)
    for _ in range(3):
        enforcer.observe(reported(DERIVATIVES=20))
    drift = [r for r in caplog.records if r.getMessage().startswith("DCP window drift")]
    assert sorted((r.product, r.drift) for r in drift) == [("DERIVATIVES", "different_window"), ("OPTIONS", "not_enabled")]
    assert sample(metrics, "bybit_dcp_window_drift", product="OPTIONS") == 1
    enforcer.observe(reported(DERIVATIVES=10))
    assert sample(metrics, "bybit_dcp_window_drift", product="DERIVATIVES") == 0
    assert [r.product for r in caplog.records if r.getMessage() == "DCP window in sync again"] == ["DERIVATIVES"]
    assert bybit.set_calls == [] and bybit.queries == 0


async def test_dry_run_logs_the_exact_request_and_sends_nothing(caplog):
    caplog.set_level(logging.INFO, logger="exporter.reassert")
    clock, bybit = FakeClock(), FakeBybit(SPOT=25)
    enforcer, metrics = make("dry-run", {"SPOT": 15}, bybit, clock)
    for _ in range(4):
        enforcer.observe(reported(SPOT=25))
        clock.t += 30
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
    clock, bybit = FakeClock(), FakeBybit(SPOT=20, DERIVATIVES=20)
    bybit.fail_with = code
    enforcer, metrics = make("enforce", {"SPOT": 10, "DERIVATIVES": 10}, bybit, clock)
    enforcer.observe(reported(SPOT=20, DERIVATIVES=20))
    await settled(enforcer)
    assert len(bybit.set_calls) == 2  # both products tried once, concurrently
    assert enforcer.blocked
    assert sample(metrics, "bybit_dcp_reassert_blocked") == 1
    for _ in range(50):
        clock.t += 600
        enforcer.observe(reported(SPOT=20, DERIVATIVES=20))
    await settled(enforcer)
    assert len(bybit.set_calls) == 2
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="SPOT") == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].code == code
    assert all(r.result == "error" for r in caplog.records if r.getMessage() == "DCP window set (audit)")


async def test_failures_back_off_and_are_counted():
    clock, bybit = FakeClock(), FakeBybit(SPOT=20)
    bybit.fail_with = "10016"
    enforcer, metrics = make("enforce", {"SPOT": 10}, bybit, clock)
    for _ in range(120):  # an hour of 30 s polls
        enforcer.observe(reported(SPOT=20))
        await settled(enforcer)
        clock.t += 30
    # at 0, then 20/40/80/160/320/640/1280 s apart (rounded up to polls): 7 within the hour
    assert 5 <= len(bybit.set_calls) <= 8
    assert sample(metrics, "bybit_dcp_reassert_failures_total", product="SPOT") == len(bybit.set_calls)
    assert not enforcer.blocked


async def test_aclose_cancels_a_running_set():
    clock, bybit = FakeClock(), FakeBybit(SPOT=20)
    bybit.gate = asyncio.Event()  # the set never answers
    enforcer, _ = make("enforce", {"SPOT": 10}, bybit, clock)
    enforcer.observe(reported(SPOT=20))
    await asyncio.sleep(0)
    assert enforcer.busy and bybit.set_calls == [("SPOT", 10)]
    await asyncio.wait_for(enforcer.aclose(), 2)
    assert not enforcer.busy


async def test_auth_failure_on_the_poll_blocks_too(caplog):
    clock, bybit = FakeClock(), FakeBybit(SPOT=20)
    enforcer, metrics = make("enforce", {"SPOT": 10}, bybit, clock)
    enforcer.observe_auth_failure(AuthError("10003").code)
    enforcer.observe(reported(SPOT=20))
    await settled(enforcer)
    assert bybit.set_calls == []
    assert sample(metrics, "bybit_dcp_reassert_blocked") == 1
