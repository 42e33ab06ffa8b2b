"""What the simulator records for tests stays bounded when it runs for days (demo, drills)."""

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
