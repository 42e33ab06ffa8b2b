"""The backfill's arithmetic (pure) and its paging against a fake REST client (no sockets).

The supervisor-level backfill tests in ``tests/sim`` run it against the simulator; these pin
the range it asks for, how gaps merge, and where it stops paging.
"""

import logging

from virtual_clock import VirtualClock

from exporter.bybit.errors import BybitError
from exporter.bybit.timeframe import TimeFrame
from exporter.dcp import HISTORY_KEPT_MS
from exporter.metrics import Metrics
from exporter.monitor.backfill import (
    RECENT_CLOSED_PAGES,
    Backfill,
    changed_since,
    history_range,
    merge_gaps,
    updated_ms,
)

T0 = 1_700_000_000.0


def test_history_range_starts_a_margin_before_the_gap_and_ends_a_second_past_now():
    assert history_range(T0 - 100, T0 - 90, T0, 10.0) == (int((T0 - 110) * 1000), int((T0 + 1) * 1000))


def test_history_range_ends_past_up_at_when_the_clock_is_behind_it():
    assert history_range(T0 - 100, T0 + 5, T0, 0.0)[1] == int((T0 + 6) * 1000)


def test_history_range_never_reaches_back_beyond_what_bybit_keeps():
    start_ms, end_ms = history_range(T0 - 3 * 24 * 3600, T0, T0, 10.0)
    assert end_ms - start_ms == HISTORY_KEPT_MS


def test_gaps_merge_into_one_spanning_both():
    assert merge_gaps(None, (5.0, 6.0)) == (5.0, 6.0)
    assert merge_gaps((5.0, 6.0), (1.0, 3.0)) == (1.0, 6.0)
    assert merge_gaps((1.0, 3.0), (2.0, 9.0)) == (1.0, 9.0)


def test_changed_since_keeps_orders_updated_in_the_gap_named_by_category():
    page = [
        {"orderId": "new", "updatedTime": "2000"},
        {"orderId": "edge", "updatedTime": "1000"},
        {"orderId": "old", "updatedTime": "999"},
        {"orderId": "undated", "updatedTime": "soon"},
    ]
    kept = changed_since(page, 1000, "spot")
    assert [o["orderId"] for o in kept] == ["new", "edge", "undated"]  # the tracker judges "undated"
    assert {o["category"] for o in kept} == {"spot"}
    assert "category" not in page[0]  # the page itself is left alone
    assert updated_ms({}) == float("inf")


class FakeRest:
    """History of ``pages`` pages per category (each with a cursor to the next); closed orders as given."""

    def __init__(self, pages=1, closed=None, failing=()):
        self.pages = pages
        self.closed = closed or {}
        self.failing = set(failing)
        self.history_calls: list[tuple] = []
        self.closed_calls: list[tuple] = []

    async def order_history(self, category, start_ms, end_ms, cursor=None):
        self.history_calls.append((category, start_ms, end_ms, cursor))
        if category in self.failing:
            raise BybitError("10016", "server error")
        page = int(cursor or 0)
        orders = [{"orderId": f"{category}-{page}"}]
        return orders, (str(page + 1) if page + 1 < self.pages else None)

    async def open_orders(self, category, cursor=None, settle_coin=None, *, closed=False):
        assert closed
        self.closed_calls.append((category, settle_coin, cursor))
        return self.closed.get((category, settle_coin), ([], None))


def backfill(rest, **kw):
    taken: list[tuple[list[dict], str]] = []
    metrics = Metrics()
    clock = VirtualClock(wall_at_zero=T0)
    fill = Backfill("a", rest, lambda orders, source: taken.append((orders, source)), metrics, clock=clock, **kw)
    return fill, taken, metrics


async def test_a_gap_reads_every_category_and_hands_each_page_to_the_trigger_path():
    rest = FakeRest(pages=2)
    fill, taken, _ = backfill(rest, margin=0.0)
    assert await fill.run(T0 - 60, T0) == 8  # 4 categories x 2 pages of one order
    assert fill.gaps_read == 1
    assert {c for c, *_ in rest.history_calls} == {"spot", "linear", "inverse", "option"}
    assert {(s, e) for _, s, e, _ in rest.history_calls} == {history_range(T0 - 60, T0, T0, 0.0)}
    assert {source for _, source in taken} == {"history", "recent closed orders"}
    assert [(c, coin) for c, coin, _ in rest.closed_calls if c == "linear"] == [("linear", "USDT"), ("linear", "USDC")]


async def test_history_stops_at_the_page_limit_with_a_warning(caplog):
    rest = FakeRest(pages=50)
    fill, _, _ = backfill(rest, max_pages=3)
    with caplog.at_level(logging.WARNING):
        assert await fill.run(T0 - 60, T0) == 12
    assert sum(1 for c, *_ in rest.history_calls if c == "spot") == 3
    assert "page limit" in caplog.text
    # The account's lines keep the logger name they had before the backfill had a module.
    assert {r.name for r in caplog.records} == {"exporter.monitor.account"}


async def test_recent_closed_orders_stop_at_the_first_page_older_than_the_gap():
    start_ms, _ = history_range(T0 - 60, T0, T0, 0.0)
    fresh = {"orderId": "f", "updatedTime": str(start_ms + 1)}
    stale = {"orderId": "s", "updatedTime": str(start_ms - 1)}
    rest = FakeRest(pages=1, closed={("spot", None): ([fresh, stale], "more")})
    fill, taken, _ = backfill(rest, margin=0.0)
    await fill.run(T0 - 60, T0)
    assert [c for c, *_ in rest.closed_calls if c == "spot"] == ["spot"]  # one page: the rest is older
    assert [
        [o["orderId"] for o in orders] for orders, source in taken if source == "recent closed orders" and orders
    ] == [["f"]]


async def test_recent_closed_orders_page_on_while_every_order_is_new_but_not_forever():
    start_ms, _ = history_range(T0 - 60, T0, T0, 0.0)
    fresh = {"orderId": "f", "updatedTime": str(start_ms + 1)}
    rest = FakeRest(pages=1, closed={("option", None): ([fresh], "more")})
    fill, _, _ = backfill(rest, margin=0.0)
    await fill.run(T0 - 60, T0)
    assert sum(1 for c, *_ in rest.closed_calls if c == "option") == RECENT_CLOSED_PAGES


async def test_a_failing_category_is_counted_and_stops_only_itself():
    rest = FakeRest(pages=1, failing={"inverse"})
    fill, taken, metrics = backfill(rest)
    assert await fill.run(T0 - 60, T0) == 3
    failures = metrics.registry.get_sample_value
    assert failures("bybit_dcp_backfill_failures_total", {"account": "a", "category": "inverse"}) == 1
    assert failures("bybit_dcp_backfill_failures_total", {"account": "a", "category": "spot"}) is None
    assert fill.gaps_read == 1
    assert ("inverse", None, None) in rest.closed_calls  # its recent closed orders are still read


async def test_the_window_and_the_closed_orders_filter_are_in_bybits_time():
    """The host an hour ahead of Bybit (the offset known from its server time): the range asked
    for and the updatedTime filter are Bybit's, so the gap's orders are still in them."""
    timeframe = TimeFrame()
    timeframe.server_time(T0 - 3600, T0, T0)
    bybit_start_ms, _ = history_range(T0 - 3600 - 60, T0 - 3600, T0 - 3600, 0.0)
    in_gap = {"orderId": "g", "updatedTime": str(bybit_start_ms + 1000)}
    rest = FakeRest(pages=1, closed={("spot", None): ([in_gap], None)})
    fill, taken, _ = backfill(rest, margin=0.0, timeframe=timeframe)
    await fill.run(T0 - 60, T0)  # the gap in local wall time
    assert {(s, e) for _, s, e, _ in rest.history_calls} == {history_range(T0 - 3660, T0 - 3600, T0 - 3600, 0.0)}
    assert [o["orderId"] for orders, source in taken if source == "recent closed orders" for o in orders] == ["g"]
