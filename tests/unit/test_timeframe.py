"""The account's one offset to Bybit's clock (pure): what it takes, what it refuses, and why."""

from __future__ import annotations

import math

import pytest

from exporter.bybit.timeframe import MAX_CLOCK_SKEW_SECONDS, MAX_SERVER_TIME_SKEW_SECONDS, TimeFrame
from exporter.dcp import CLOCK_SOURCES

T0 = 1_700_000_000.0


def frame() -> tuple[TimeFrame, list[tuple[str, float]]]:
    refused: list[tuple[str, float]] = []
    return TimeFrame(lambda source, skew: refused.append((source, skew))), refused


def test_bybits_server_time_sets_the_offset_from_the_midpoint_of_the_request():
    tf, refused = frame()
    assert not tf.known and tf.bybit(T0) == T0  # nothing learned: the local clock
    assert tf.server_time(T0 + 3600.0, T0 - 0.2, T0 + 0.2)  # an hour ahead: Bybit says so, it is so
    assert tf.known and tf.offset == pytest.approx(3600.0)
    assert tf.bybit(T0) == pytest.approx(T0 + 3600.0) and tf.bybit_ms(T0) == int((T0 + 3600.0) * 1000)
    assert tf.server_time(T0 - 60.0, T0, T0)  # a minute behind, later
    assert tf.offset == pytest.approx(-60.0) and not refused


def test_a_server_time_a_day_or_more_off_or_not_a_number_is_refused():
    tf, refused = frame()
    tf.server_time(T0 + 2.0, T0, T0)
    assert not tf.server_time(T0 + MAX_SERVER_TIME_SKEW_SECONDS + 1, T0, T0)
    assert not tf.server_time(math.nan, T0, T0)
    assert tf.offset == pytest.approx(2.0)
    assert [source for source, _ in refused] == ["server_time", "server_time"]


def test_a_pong_refines_the_offset_within_the_bound_of_the_last_server_time():
    tf, refused = frame()
    tf.server_time(T0 + 60.0, T0, T0)
    assert tf.pong(60.4)
    assert tf.offset == pytest.approx(60.4)
    assert tf.pong(60.0 + MAX_CLOCK_SKEW_SECONDS)  # at the bound: taken
    assert tf.pong(60.0 - MAX_CLOCK_SKEW_SECONDS)
    assert not refused


def test_a_pong_beyond_the_bound_is_refused_counted_and_never_applied():
    tf, refused = frame()
    tf.server_time(T0 + 1.0, T0, T0)
    tf.pong(1.5)
    seventy_years = 70 * 365 * 24 * 3600.0
    assert not tf.pong(seventy_years)
    assert not tf.pong(1.0 + MAX_CLOCK_SKEW_SECONDS + 0.001)
    assert not tf.pong(-math.inf) and not tf.pong(math.nan)
    assert tf.offset == pytest.approx(1.5)  # what it was
    assert [source for source, _ in refused] == ["pong"] * 4
    # The bound is measured from the server time, not from the last pong: pongs creeping a
    # little at a time cannot walk the offset away.
    for step in range(1, 20):
        tf.pong(1.0 + step * MAX_CLOCK_SKEW_SECONDS / 4)
    assert tf.offset <= 1.0 + MAX_CLOCK_SKEW_SECONDS


def test_without_a_server_time_a_pong_is_bounded_by_the_local_clock():
    tf, refused = frame()
    assert tf.pong(3.0) and tf.offset == 3.0
    assert not tf.pong(MAX_CLOCK_SKEW_SECONDS * 2) and tf.offset == 3.0
    assert not tf.known  # a pong is no server time: the stream still reads one before its auth


def test_the_sources_are_the_metrics_label_values():
    tf, refused = frame()
    tf.server_time(math.inf, T0, T0)
    tf.pong(math.inf)
    assert tuple(source for source, _ in refused) == CLOCK_SOURCES
