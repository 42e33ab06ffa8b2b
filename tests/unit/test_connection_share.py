"""The exporter's share of Bybit's connection budget: never more than the share in any 5 minutes,
never faster than the pace, and a cold start of 1,000 accounts in one window plus one pace."""

import random

import pytest

from exporter.bybit.pacing import (
    BURST,
    BYBIT_PERIOD,
    PACE,
    ConnectionBudget,
    budget_for_share,
    cold_start_seconds,
)
from exporter.cli import main


def grants(budget: ConnectionBudget, nows: list[float], host: str = "stream.bybit.com") -> list[float]:
    return [now + budget.reserve(host, now) for now in nows]


def most_in_any_window(times: list[float], period: float) -> int:
    times = sorted(times)
    most, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + period:
            j += 1
        most = max(most, j - i)
    return most


@pytest.mark.parametrize("share", [1.0, 0.6, 0.1])
def test_no_five_minutes_hold_more_than_the_share(share):
    budget = budget_for_share(share)
    rng = random.Random(7)
    now, nows = 0.0, []
    for _ in range(2_000):  # bursts of reconnects and quiet spells
        now += rng.choice([0.0, 0.0, 0.01, 1.0, 30.0])
        nows.append(now)
    times = grants(budget, nows)
    assert most_in_any_window(times, BYBIT_PERIOD) <= int(500 * share)
    for seconds in (1.0, 10.0):  # the burst, then the pace
        assert most_in_any_window(times, seconds) <= min(BURST, int(500 * share)) + PACE * seconds
    assert all(t >= n for t, n in zip(times, nows, strict=True))


def test_a_thousand_accounts_start_in_one_window_and_a_pace():
    times = grants(budget_for_share(1.0), [0.0] * 1_000)
    assert times[-1] == pytest.approx(cold_start_seconds(1_000))
    assert 300 < times[-1] < 330  # a token bucket with a fifth of the limit as burst needs 675 s
    assert times[BURST - 1] == 0.0  # a burst at once
    assert times[499] == pytest.approx((499 - (BURST - 1)) / PACE)  # then the pace, to the limit


def test_each_host_has_its_own_window():
    budget = budget_for_share(1.0)
    for _ in range(500):
        budget.reserve("a", 0.0)
    assert budget.reserve("b", 0.0) == 0.0
    assert budget.reserve("a", 0.0) > BYBIT_PERIOD


def test_cold_start_math_for_a_share():
    assert cold_start_seconds(100) == 0.0
    assert cold_start_seconds(1_000, share=0.5) == pytest.approx(3 * 305 + (249 - 99) / PACE)  # 250 per window
    times = grants(budget_for_share(0.5), [0.0] * 1_000)
    assert times[-1] == pytest.approx(cold_start_seconds(1_000, share=0.5))


@pytest.mark.parametrize("share", [0, -1, 1.5, 0.001])
def test_a_share_outside_the_budget_is_refused(share):
    with pytest.raises(ValueError):
        budget_for_share(share)


@pytest.mark.parametrize(("share", "status"), [("0.5", 0), ("1.5", 2), ("none", 2)])
def test_the_flag_is_checked_before_anything_runs(share, status, monkeypatch, capsys):
    monkeypatch.setenv("BYBIT_API_KEY", "KEY12345")
    monkeypatch.setenv("BYBIT_API_SECRET", "connection-share-secret-123456")
    assert main(["--bybit.connection-share", share, "--check-config"]) == status
    if status:
        assert "connection-share" in capsys.readouterr().err
