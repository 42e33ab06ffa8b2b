"""The account mode as metrics: ``GET /v5/account/info`` every few minutes beside the DCP poll,
``bybit_dcp_account_unified_margin_status`` and ``bybit_dcp_unprotected_category`` (inverse under
UTA 1.0 while DERIVATIVES has DCP), against the simulator over loopback."""

from __future__ import annotations

import aiohttp
import pytest
from helpers import eventually, parse_metrics
from prometheus_client import generate_latest
from virtual_clock import VirtualClock

from exporter.bybit.models import DcpSetting, parse_unified_margin_status
from exporter.bybit.rest import RestClient
from exporter.config import AccountConfig, Config
from exporter.dcp import unprotected_categories
from exporter.metrics import Metrics
from exporter.monitor.account_mode import ACCOUNT_MODE_INTERVAL, AccountMode
from exporter.monitor.fleet import Fleet
from exporter.monitor.rest_metrics import RestMetrics
from exporter.secrets import Secret
from exporter.simulator import Simulator

KEY, SECRET = "mode-key-0001", "mode-secret-0001"
INFO = "/v5/account/info"
BOTH = {p: DcpSetting(p, "ON", 10) for p in ("SPOT", "DERIVATIVES")}
SPOT_ONLY = {"SPOT": DcpSetting("SPOT", "ON", 10)}


@pytest.fixture
async def sim():
    async with Simulator() as s:
        s.add_account(KEY, SECRET, unified_margin_status=3)
        yield s


def mode_reads(sim: Simulator) -> int:
    """Answered reads of the mode (a virtual clock's advance also moves the wall time the client
    signs with, so its first call after one is refused with 10002 and signed again)."""
    return len([c for c in sim.account(KEY).rest_calls if c["path"] == INFO and c["ret_code"] == 0])


def generate_latest_text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def gauge(metrics: Metrics, name: str, **labels: str) -> float | None:
    return parse_metrics(generate_latest_text(metrics)).get((name, frozenset({"account": "a", **labels}.items())))


def test_only_inverse_under_uta_1_with_derivatives_dcp_is_unprotected():
    derivatives = frozenset({"DERIVATIVES"})
    assert unprotected_categories(3, derivatives) == {"inverse": True}
    assert unprotected_categories(4, derivatives | {"SPOT"}) == {"inverse": True}
    assert unprotected_categories(3, frozenset({"SPOT"})) == {"inverse": False}
    assert unprotected_categories(5, derivatives) == {"inverse": False}
    assert unprotected_categories(1, derivatives) == {"inverse": False}  # classic: Bybit says nothing of it


def test_the_status_is_an_integer_or_nothing():
    assert parse_unified_margin_status({"unifiedMarginStatus": 6}) == 6
    assert parse_unified_margin_status({"unifiedMarginStatus": "4"}) == 4
    for bad in ({}, {"unifiedMarginStatus": True}, {"unifiedMarginStatus": "x"}, {"unifiedMarginStatus": -1}, []):
        with pytest.raises(ValueError):
            parse_unified_margin_status(bad)


async def test_the_exporter_reads_the_mode_once_per_interval_and_flags_inverse(sim):
    account = AccountConfig(
        name="a",
        api_key=KEY,
        api_secret=Secret(SECRET),
        environment="simulator",
        rest_url=sim.rest_url,
        ws_url=sim.ws_url,
        poll_interval=0.1,
    )
    metrics = Metrics()
    fleet = Fleet(Config(accounts=[account]), metrics)
    await fleet.start()
    try:
        await eventually(lambda: gauge(metrics, "bybit_dcp_account_unified_margin_status") == 3, what="the mode")
        assert gauge(metrics, "bybit_dcp_unprotected_category", category="inverse") == 1
        polls = lambda: len([c for c in sim.account(KEY).rest_calls if c["path"] == "/v5/account/query-dcp-info"])
        await eventually(lambda: polls() >= 4, what="more DCP polls")
        assert mode_reads(sim) == 1  # not on every poll: every ACCOUNT_MODE_INTERVAL
        text = generate_latest_text(metrics)
        assert 'bybit_dcp_api_requests_total{account="a",endpoint="account_info"} 1.0' in text
    finally:
        await fleet.stop()


async def test_a_later_read_follows_an_upgrade_and_a_failed_poll_hides_the_flag(sim):
    clock = VirtualClock()
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        rest = RestClient(
            session,
            account="a",
            environment="simulator",
            base_url=sim.rest_url,
            api_key=KEY,
            api_secret=Secret(SECRET),
            observer=RestMetrics(metrics, "a", "simulator"),
            clock=clock,
        )
        mode = AccountMode("a", rest, metrics, clock)
        await mode.after_poll(BOTH)
        assert (mode.status, gauge(metrics, "bybit_dcp_unprotected_category", category="inverse")) == (3, 1)
        await mode.after_poll(SPOT_ONLY)  # DERIVATIVES lost its DCP: nothing left for the mode to leave out
        assert gauge(metrics, "bybit_dcp_unprotected_category", category="inverse") == 0
        assert mode_reads(sim) == 1

        sim.set_account_mode(KEY, 5)  # the account is upgraded to UTA 2.0
        await clock.advance(ACCOUNT_MODE_INTERVAL - 1)
        await mode.after_poll(BOTH)
        assert (mode_reads(sim), mode.status) == (1, 3)
        assert gauge(metrics, "bybit_dcp_unprotected_category", category="inverse") == 1
        await clock.advance(1)
        await mode.after_poll(BOTH)
        assert (mode_reads(sim), gauge(metrics, "bybit_dcp_account_unified_margin_status")) == (2, 5)
        assert gauge(metrics, "bybit_dcp_unprotected_category", category="inverse") == 0

        await mode.after_poll(None)  # the DCP poll failed: the DCP state is unknown
        assert gauge(metrics, "bybit_dcp_unprotected_category", category="inverse") is None
        assert gauge(metrics, "bybit_dcp_account_unified_margin_status") == 5

        sim.force_error(INFO, 10016)
        await clock.advance(ACCOUNT_MODE_INTERVAL)
        await mode.after_poll(BOTH)  # a failed read keeps the last mode
        assert gauge(metrics, "bybit_dcp_account_unified_margin_status") == 5
        assert gauge(metrics, "bybit_dcp_api_errors_total", endpoint="account_info", code="10016") == 1
