"""What the simulator records for tests stays bounded when it runs for days (demo, drills)."""

import random

from exporter.simulator import accounts
from exporter.simulator.accounts import RECORD_LIMIT, Records


def test_records_keep_the_newest_and_stay_bounded():
    records = Records()
    for i in range(5 * RECORD_LIMIT):
        records.append(i)
        assert len(records) <= 2 * RECORD_LIMIT
    assert records[-1] == 5 * RECORD_LIMIT - 1
    assert len(records) >= RECORD_LIMIT
    assert records == list(range(5 * RECORD_LIMIT - len(records), 5 * RECORD_LIMIT))


def test_account_records_are_bounded_lists():
    account = accounts.SimAccount(api_key="k", api_secret="s")
    for field in (account.ws_frames, account.rest_calls, account.set_dcp_calls, account.triggers):
        assert isinstance(field, Records) and field == []


def test_cancelled_orders_no_list_shows_are_dropped_when_new_orders_come():
    day = accounts.CANCELLED_LISTED_MS / 1000
    account = accounts.SimAccount(api_key="k", api_secret="s")
    rng = random.Random(1)

    def order(now):
        return account.new_order(
            now,
            order_id=accounts.new_order_id(rng),
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            qty="1",
            price="1",
        )

    old, recent = order(0.0), order(0.0)
    account.cancel_by_dcp(("linear",), now=10.0)  # both cancelled at 10 s
    recent["updatedTime"] = accounts.ms(day)  # say this one was cancelled a day later
    resting = order(20.0)  # a resting order is kept however old
    order(day + 10.0)  # exactly 24 h after the first cancel: still listed
    assert old["orderId"] in account.orders
    order(day + 10.5)
    assert old["orderId"] not in account.orders
    assert recent["orderId"] in account.orders and resting["orderId"] in account.orders
    assert len(account.orders) == 4  # recent, resting and the two new ones
