"""CancelByDCP -> cancelled orders and trigger bursts (no sockets, fake clock).

The tracker is pure; each test records its observations into metrics the way the
account supervisor does (``record_triggers``) and asserts on the metrics.
"""

import random

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from virtual_clock import VirtualClock

from exporter.metrics import Metrics
from exporter.monitor import triggers as tr
from exporter.monitor.projections import record_triggers
from exporter.monitor.triggers import TriggerTracker

T0 = 1_700_000_000.0


def order(oid, category="linear", at=T0, cancel="CancelByDCP"):
    return {
        "orderId": oid,
        "category": category,
        "orderStatus": "Cancelled",
        "cancelType": cancel,
        "updatedTime": str(int(at * 1000)),
    }


class Recorded:
    """A tracker fed at the clock's time, its observations recorded as the supervisor does."""

    def __init__(self, metrics, clock, **kw):
        self.tracker = TriggerTracker(**kw)
        self.metrics = metrics
        self.clock = clock
        self.ignored = 0

    def take(self, orders):
        observation = self.tracker.take(orders, self.clock.time())
        record_triggers(self.metrics, "a", observation)
        self.ignored += observation.ignored
        return list(observation.events)

    @property
    def remembered(self):
        return self.tracker.remembered


def make(**kw):
    metrics = Metrics()
    metrics.add_account("a", environment="mainnet", mode="observer")
    clock = kw.pop("clock", VirtualClock(T0 + 60))
    return metrics, Recorded(metrics, clock, **kw), clock


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, {"account": "a", **labels}) or 0.0


def test_burst_is_one_trigger_and_each_order_counts_once():
    metrics, t, _ = make()
    events = t.take([order("1", at=T0), order("2", at=T0 + 0.2), order("3", "inverse", at=T0 + 1)])
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 2
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="inverse") == 1
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 1
    assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == T0
    assert len(events) == 1
    ev = events[0]
    assert ev.new and ev.product == "DERIVATIVES" and ev.started_at == T0
    assert set(ev.order_ids) == {"1", "2", "3"} and set(ev.categories) == {"linear", "inverse"}

    # the same orders again (e.g. from history backfill): nothing changes
    assert t.take([order("1", at=T0), order("3", "inverse", at=T0 + 1)]) == []
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 2
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 1


def test_other_cancels_are_ignored():
    metrics, t, _ = make()
    assert t.take([order("1", cancel="CancelByUser"), order("2", cancel="UNKNOWN"), {"orderId": "3"}]) == []
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 0
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 0


def test_products_are_separate_triggers():
    metrics, t, _ = make()
    events = t.take([order("s1", "spot"), order("l1", "linear"), order("o1", "option")])
    assert {e.product for e in events} == {"SPOT", "DERIVATIVES", "OPTIONS"}
    for product in ("SPOT", "DERIVATIVES", "OPTIONS"):
        assert value(metrics, "bybit_dcp_triggers_total", product=product) == 1


def test_bursts_further_apart_than_window_are_two_triggers():
    metrics, t, _ = make(burst_window=5.0)
    t.take([order("1", at=T0)])
    events = t.take([order("2", at=T0 + 30)])
    assert events[0].new
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 2
    assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == T0 + 30


def test_late_order_of_a_counted_burst_joins_it():
    metrics, t, _ = make()
    t.take([order("1", at=T0 + 1)])
    # the rest of the same burst arrives later by backfill, one of them even earlier
    events = t.take([order("2", at=T0 + 0.5), order("3", at=T0 + 3)])
    assert len(events) == 1 and not events[0].new
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 1
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 3
    # last trigger is the burst's first updatedTime
    assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == T0 + 0.5


def test_backfilled_older_burst_counts_but_does_not_move_last_trigger_back():
    metrics, t, _ = make()
    t.take([order("new", at=T0 + 100)])
    events = t.take([order("old", at=T0)])
    assert events[0].new and events[0].started_at == T0
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 2
    assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == T0 + 100


def test_missing_updated_time_uses_the_clock():
    metrics, t, clock = make()
    o = order("1")
    del o["updatedTime"]
    events = t.take([o])
    assert events[0].started_at == clock.time()


def test_memory_is_bounded_by_count():
    metrics, t, _ = make(max_remembered=10)
    t.take([order(str(i), at=T0 + i * 0.01) for i in range(50)])
    assert t.remembered == 10
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 50


def test_memory_expires_after_25_hours():
    metrics, t, clock = make()
    t.take([order("1", at=T0)])
    clock.jump(tr.RETENTION_SECONDS + 1)
    t.take([])
    assert t.remembered == 0


def test_malformed_dcp_orders_are_ignored_not_fatal():
    metrics, t, _ = make()
    bad = [
        {"cancelType": "CancelByDCP", "category": "linear"},
        {"cancelType": "CancelByDCP", "orderId": "x", "category": "futures"},
        {
            "cancelType": "CancelByDCP",
            "orderId": "y",
            "category": "linear",
            "updatedTime": "soon",
            "orderStatus": "Cancelled",
        },
        {"cancelType": "CancelByDCP", "orderId": "z", "category": "linear", "orderStatus": ["Cancelled"]},
        "not a dict",
    ]
    events = t.take(bad)
    assert t.ignored == 3
    assert value(metrics, "bybit_dcp_ignored_cancels_total") == 3
    assert [e.order_ids for e in events] == [("y",)]


def test_a_dcp_cancel_type_on_an_order_that_is_not_cancelled_is_not_a_trigger():
    """A closed status that is not a cancel passes silently (a Filled may carry a cancelType); an
    open status with DCP's cancelType, no status or one Bybit does not document is counted as ignored."""
    metrics, t, _ = make()
    live = [
        dict(order(str(i)), orderStatus=status)
        for i, status in enumerate(["New", "PartiallyFilled", "Filled", None, "Vanished"])
    ]
    assert t.take(live) == []
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 0
    assert value(metrics, "bybit_dcp_ignored_cancels_total") == 4
    ended = [dict(order(s), orderStatus=s) for s in ("Cancelled", "PartiallyFilledCanceled", "Deactivated")]
    assert len(t.take(ended)[0].order_ids) == 3


def test_an_insane_updated_time_never_dates_a_trigger_and_later_triggers_still_move_the_gauge():
    metrics, t, clock = make()
    for i, raw in enumerate(["1e20", "Infinity", str(int((clock.time() + 86400) * 1000)), "1700000000000000"]):
        clock.jump(3600)
        events = t.take([dict(order(f"bad{i}"), updatedTime=raw)])
        assert events[0].started_at == clock.time()  # dated by its arrival instead
        assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == clock.time()
    assert value(metrics, "bybit_dcp_invalid_values_total", field="updatedTime") == 4
    clock.jump(3600)
    t.take([order("good", at=clock.time() - 1)])
    assert value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES") == clock.time() - 1


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=3.0), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=5),
)
def test_one_burst_is_one_trigger_whatever_the_arrival_order(offsets, rnd, batches):
    """A single DCP trigger (all cancels within the window) counts once, however the
    orders are split between live pushes and backfill batches and in whatever order."""
    metrics, t, _ = make(burst_window=5.0)
    orders = [
        order(f"o{i}", random.Random(i).choice(["linear", "inverse"]), at=T0 + off) for i, off in enumerate(offsets)
    ]
    rnd.shuffle(orders)
    # deliver in batches, with duplicates
    chunks = [orders[i::batches] for i in range(batches)] + [orders[: len(orders) // 2]]
    for chunk in chunks:
        t.take(chunk)
    assert value(metrics, "bybit_dcp_triggers_total", product="DERIVATIVES") == 1
    total = sum(value(metrics, "bybit_dcp_cancelled_orders_total", category=c) for c in ("linear", "inverse"))
    assert total == len(orders)
    first = value(metrics, "bybit_dcp_last_trigger_timestamp_seconds", product="DERIVATIVES")
    assert abs(first - (T0 + min(offsets))) < 0.002


# --- orders as Bybit's docs show them ---------------------------------------------------------
# docs/v5/websocket/private/order.mdx: the stream example (an option order, Filled, with
# cancelType "UNKNOWN") and the note that a cancel racing a fill gives two Filled messages,
# the second with cancelType=CancelByUser. docs/v5/enum.mdx: cancelType and orderStatus.

DOCS_FILLED_UNKNOWN = {
    "symbol": "ETH-30DEC22-1400-C",
    "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020",
    "side": "Sell",
    "orderType": "Market",
    "cancelType": "UNKNOWN",
    "price": "72.5",
    "qty": "1",
    "orderIv": "",
    "timeInForce": "IOC",
    "orderStatus": "Filled",
    "orderLinkId": "",
    "lastPriceOnCreated": "",
    "reduceOnly": False,
    "leavesQty": "",
    "leavesValue": "",
    "cumExecQty": "1",
    "cumExecValue": "75",
    "avgPrice": "75",
    "blockTradeId": "",
    "positionIdx": 0,
    "cumExecFee": "0.358635",
    "closedPnl": "0",
    "createdTime": "1672364262444",
    "updatedTime": "1672364262457",
    "rejectReason": "EC_NoError",
    "stopOrderType": "",
    "tpslMode": "",
    "triggerPrice": "",
    "takeProfit": "",
    "stopLoss": "",
    "tpTriggerBy": "",
    "slTriggerBy": "",
    "tpLimitPrice": "",
    "slLimitPrice": "",
    "triggerDirection": 0,
    "triggerBy": "",
    "closeOnTrigger": False,
    "category": "option",
    "placeType": "price",
    "smpType": "None",
    "smpGroup": 0,
    "smpOrderId": "",
    "feeCurrency": "",
}


def docs_order(**changes) -> dict:
    """The docs' example order with some fields changed (and new fields Bybit keeps adding)."""
    return DOCS_FILLED_UNKNOWN | {
        "cumFeeDetail": {"USDT": "0.358635"},
        "parentOrderLinkId": "",
        "updatedTime": str(int(T0 * 1000)),
        **changes,
    }


def test_the_docs_example_and_the_second_filled_with_a_cancel_type_are_no_dcp_cancel():
    metrics, t, _ = make()
    racing_cancel = docs_order(orderId="o-filled", cancelType="CancelByUser", rejectReason="EC_OrigClOrdIDDoesNotExist")
    filled_by_dcp_race = docs_order(orderId="o-filled-dcp", cancelType="CancelByDCP")
    events = t.take([DOCS_FILLED_UNKNOWN | {"updatedTime": str(int(T0 * 1000))}, racing_cancel, filled_by_dcp_race])
    assert events == []
    assert t.ignored == 0  # documented shapes, not malformed ones
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="option") == 0
    assert value(metrics, "bybit_dcp_triggers_total", product="OPTIONS") == 0


@pytest.mark.parametrize("spelling", ["CancelByDCP", "cancelByDCP", "cancelbydcp", "CANCELBYDCP"])
def test_cancel_type_is_compared_without_regard_to_case(spelling):
    """The changelog spelled CancelBySmp 'cancelBySmp': the enum's case is not to be relied on."""
    metrics, t, _ = make()
    events = t.take([docs_order(orderId="o-1", cancelType=spelling, orderStatus="Cancelled")])
    assert [e.order_ids for e in events] == [("o-1",)]
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="option") == 1


@pytest.mark.parametrize("status", ["Cancelled", "PartiallyFilledCanceled", "Deactivated"])
def test_each_cancelled_terminal_status_counts(status):
    """Deactivated: an untriggered conditional or TP/SL order that DCP cancelled before it triggered."""
    metrics, t, _ = make()
    category = "spot" if status == "PartiallyFilledCanceled" else "linear"
    t.take([docs_order(orderId="o-1", category=category, cancelType="CancelByDCP", orderStatus=status)])
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category=category) == 1


@pytest.mark.parametrize("status", ["Rejected", "Filled", "Triggered", "filled"])
def test_orders_that_ended_otherwise_with_dcps_cancel_type_neither_count_nor_are_ignored(status):
    metrics, t, _ = make()
    assert t.take([docs_order(orderId="o-1", category="linear", cancelType="CancelByDCP", orderStatus=status)]) == []
    assert t.ignored == 0 and value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 0


@pytest.mark.parametrize("status", ["New", "PartiallyFilled", "Untriggered"])
def test_open_orders_with_dcps_cancel_type_are_counted_as_ignored(status):
    """Still open and cancelled by DCP cannot both be true: a contradiction, made visible."""
    metrics, t, _ = make()
    assert t.take([docs_order(orderId="o-1", category="linear", cancelType="CancelByDCP", orderStatus=status)]) == []
    assert t.ignored == 1 and value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 0


@pytest.mark.parametrize(
    "cancel_type", ["UNKNOWN", "CancelByUser", "CancelBySmp", "cancelBySmp", "CancelByNewThing", "", 7, None]
)
def test_other_cancel_types_are_passed_over_without_error(cancel_type):
    metrics, t, _ = make()
    events = t.take([docs_order(orderId="o-1", category="linear", cancelType=cancel_type, orderStatus="Cancelled")])
    assert events == [] and t.ignored == 0
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 0
