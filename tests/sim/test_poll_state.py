"""Unknown is not off: what the exporter says about DCP before a good poll, while polls fail,
and when Bybit lists no product; and which series exist from the start.

The whole exporter against the simulator over loopback, as in test_account.py.
"""

from __future__ import annotations

import logging

import pytest
from account_harness import KEY, TIME_SCALE, account, running
from helpers import eventually
from status_page import article, cells, text

from exporter.dcp import NOT_AVAILABLE, PRODUCTS
from exporter.metrics import Metrics
from exporter.monitor.projections import TRIGGERS_LISTED, list_trigger
from exporter.simulator import Simulator

DCP_INFO = "/v5/account/query-dcp-info"


@pytest.fixture
async def sim():
    async with Simulator(time_scale=TIME_SCALE) as s:
        s.add_account(KEY)
        yield s


def enabled_series(r, account: str = "a") -> dict[str, float]:
    return {
        product: value
        for product in PRODUCTS
        if (value := r.local("bybit_dcp_enabled", account=account, product=product)) is not None
    }


async def landing_row(r, account: str = "a") -> str:
    """The account's card on the status board, as text."""
    async with r.session.get(r.base_url + "/") as resp:
        page = await resp.text()
    card = article(page, account)
    products = [" ".join(cells(card, p)) for p in PRODUCTS]
    return text(card) + "\n" + "\n".join(products)


async def test_failing_polls_export_unknown_with_the_reason_never_off(sim):
    sim.force_error(DCP_INFO, 10004, count=None)  # a wrong secret, from the first poll on
    async with running(account(sim, desired_windows={"SPOT": 10})) as r:
        await eventually(lambda: r.fleet.ready, what="the first poll attempt")
        error = {
            "account": "a",
            "code": "10004",
            "hint": "signature refused: check the API secret (and that it belongs to this key)",
        }
        await eventually(lambda: r.local("bybit_dcp_last_poll_error_info", **error) == 1, what="the error info")
        assert r.local("bybit_dcp_up", account="a") == 0
        assert enabled_series(r) == {}  # unknown: no 0 that would say "not enabled"
        row = await landing_row(r)
        assert "SPOT unknown – 10 s" in row and "off" not in row
        assert "10004 – signature refused" in row
        async with r.session.get(r.base_url + "/readyz") as resp:
            assert resp.status == 200  # a bad key keeps the exporter in the Service

        sim.clear_errors()  # the secret is fixed: the truth appears, the error goes
        await eventually(lambda: enabled_series(r) == {"SPOT": 1, "DERIVATIVES": 1, "OPTIONS": 0}, what="state")
        assert r.local("bybit_dcp_last_poll_error_info", **error) is None
        assert "SPOT on 10 s 10 s" in await landing_row(r)

        sim.force_error(DCP_INFO, 10017, count=None)  # a good state goes unknown again on failure
        await eventually(lambda: enabled_series(r) == {}, what="the state to be forgotten")
        samples = [
            s.labels
            for f in r.metrics.registry.collect()
            for s in f.samples
            if s.name == "bybit_dcp_last_poll_error_info"
        ]
        assert samples == [
            {
                "account": "a",
                "code": "10017",
                "hint": "route not found: check rest_url and ws_url (host and environment)",
            }
        ]


async def test_empty_dcp_infos_is_not_available_stated_once(sim, caplog):
    caplog.set_level(logging.INFO)
    for product in PRODUCTS:
        sim.set_dcp(KEY, product, None)
    async with running(account(sim)) as r:
        await eventually(lambda: enabled_series(r) == dict.fromkeys(PRODUCTS, 0.0), what="a good, empty poll")
        polls = r.local("bybit_dcp_api_requests_total", account="a", endpoint="query_dcp_info")
        await eventually(
            lambda: r.local("bybit_dcp_api_requests_total", account="a", endpoint="query_dcp_info") >= polls + 3,
            what="three more polls",
        )
        assert NOT_AVAILABLE in await landing_row(r)
    said = [rec for rec in caplog.records if rec.getMessage() == NOT_AVAILABLE]
    assert len(said) == 1 and said[0].levelno == logging.WARNING


async def test_counters_exist_at_zero_before_any_event(sim):
    """README's claim, measured: with a key Bybit refuses from the start (no poll, no stream
    ever succeeds), every counter an alert takes increase() of is already there at 0."""
    sim.force_error(DCP_INFO, 10003, count=None)
    async with running(account(sim)) as r:
        await eventually(lambda: r.fleet.ready, what="the first poll attempt")
        scraped = await r.scrape()
        names = {name for name, labels in scraped if ("account", "a") in labels}
        for counter in (
            "bybit_dcp_triggers_total",
            "bybit_dcp_cancelled_orders_total",
            "bybit_dcp_ws_reconnects_total",
            "bybit_dcp_api_failures_total",
            "bybit_dcp_backfill_failures_total",
        ):
            assert counter in names, counter
        # (bybit_dcp_reassert_failures_total: from the start for each desired window, test_metrics.)
        # The first refused poll is already visible as an increase of the unlabelled sum.
        assert (
            scraped[("bybit_dcp_api_failures_total", frozenset({"account": "a", "endpoint": "query_dcp_info"}.items()))]
            >= 1
        )


def test_each_trigger_is_a_series_of_its_own_and_only_the_latest_are_kept():
    metrics = Metrics()
    for n in range(TRIGGERS_LISTED + 2):
        list_trigger(metrics, "a", "SPOT", str(1_700_000_000_000 + n * 60_000))
    list_trigger(metrics, "a", "DERIVATIVES", "1700000000000")
    listed = [(s.labels["product"], s.labels["trigger"]) for f in metrics.trigger_info.collect() for s in f.samples]
    spot = sorted(int(t) for p, t in listed if p == "SPOT")
    assert spot == [1_700_000_000_000 + n * 60_000 for n in range(2, TRIGGERS_LISTED + 2)]  # the oldest two dropped
    assert ("DERIVATIVES", "1700000000000") in listed  # another product keeps its own
