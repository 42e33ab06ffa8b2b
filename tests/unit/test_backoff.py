"""One backoff for every retry: the floor says how much jitter, the ceiling is the same for all."""

import random

import pytest

from exporter.bybit.pacing import EQUAL_JITTER, FULL_JITTER, NO_JITTER, backoff_ceiling, backoff_delay


def test_every_floor_stays_between_its_share_of_the_ceiling_and_the_ceiling():
    rng = random.Random(11)
    for floor in (FULL_JITTER, EQUAL_JITTER, NO_JITTER):
        for attempt in (0, 1, 5, 9, 10_000):
            ceiling = backoff_ceiling(attempt, 2.0, 300.0)
            assert ceiling == min(300.0, 2.0 * 2 ** min(attempt, 64))  # 2.0 * 2**10_000 would overflow
            assert floor * ceiling <= backoff_delay(attempt, 2.0, 300.0, rng, floor=floor) <= ceiling


def test_without_jitter_the_delay_is_the_ceiling_and_needs_no_rng():
    assert [backoff_delay(n, 10.0, 1800.0, floor=NO_JITTER) for n in (0, 1, 2, 8, 10**9)] == [10, 20, 40, 1800, 1800]


def test_a_jittered_delay_without_an_rng_is_refused_rather_than_made_up():
    with pytest.raises(ValueError):
        backoff_delay(3, 1.0, 60.0)
