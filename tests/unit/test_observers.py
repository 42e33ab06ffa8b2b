"""The exporter's observers of the Bybit clients: events in, today's metrics and log lines out."""

from __future__ import annotations

import logging

from exporter.bybit.heartbeat import PongResult
from exporter.bybit.observers import RestLog, StreamLog
from exporter.bybit.session import Connected, Disconnected, InvalidFrame, PongTimeout, Reconnect, Refused, Started
from exporter.metrics import Metrics
from exporter.monitor.rest_metrics import PoolMetrics, RestMetrics
from exporter.monitor.stream_metrics import StreamMetrics

ACCOUNT = "desk-o"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_stream_events_become_the_ws_series():
    metrics = Metrics(clock=lambda: 1_000.0)
    metrics.add_account(ACCOUNT, environment="test", mode="guardian")
    observer = StreamMetrics(metrics, ACCOUNT)
    observer.on_event(Started(900.0, lambda: 990.0))
    assert value(metrics, "bybit_dcp_ws_ping_gap_seconds", account=ACCOUNT) == 10.0
    observer.on_event(Connected(950.0, None, ("order", "dcp.future"), ("DERIVATIVES",)))
    assert value(metrics, "bybit_dcp_ws_connected", account=ACCOUNT) == 1
    assert value(metrics, "bybit_dcp_ws_dcp_subscribed", account=ACCOUNT, product="DERIVATIVES") == 1
    observer.on_event(PongResult(rtt=0.02, gap=20.0, skew=0.1, matched=True, wall=951.0))
    observer.on_event(PongResult(rtt=None, gap=None, skew=None, matched=False, wall=952.0))  # an unmatched pong
    assert value(metrics, "bybit_dcp_ws_ping_rtt_seconds_count", account=ACCOUNT) == 1
    assert value(metrics, "bybit_dcp_ws_heartbeat_gap_seconds_sum", account=ACCOUNT) == 20.0
    assert value(metrics, "bybit_dcp_ws_last_pong_timestamp_seconds", account=ACCOUNT) == 952.0
    observer.on_event(InvalidFrame("not_json", "x", True))
    observer.on_event(InvalidFrame("not_json", "y", False))
    assert value(metrics, "bybit_dcp_ws_invalid_messages_total", account=ACCOUNT) == 2
    observer.on_event(PongTimeout(10.0))
    observer.on_event(Disconnected(("DERIVATIVES",)))
    observer.on_event(Reconnect("pong_timeout", 0.4))
    assert value(metrics, "bybit_dcp_ws_pong_timeouts_total", account=ACCOUNT) == 1
    assert value(metrics, "bybit_dcp_ws_reconnects_total", account=ACCOUNT, reason="pong_timeout") == 1
    assert value(metrics, "bybit_dcp_ws_connected", account=ACCOUNT) == 0
    assert value(metrics, "bybit_dcp_ws_dcp_subscribed", account=ACCOUNT, product="DERIVATIVES") == 0


def test_the_log_lines_are_the_streams_and_an_invalid_kind_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="exporter.stream")
    log_only = StreamLog(ACCOUNT)
    log_only.on_event(InvalidFrame("not_json", "x", True))
    log_only.on_event(InvalidFrame("not_json", "y", False))
    log_only.on_event(Refused("auth", "Request not authorized", ("order",)))
    log_only.on_event(Reconnect("auth_failed", 7.25))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("skipped a websocket frame" in m for m in messages) == 1
    assert any("auth refused" in m for m in messages) and "private stream reconnecting" in messages
    assert all(r.account == ACCOUNT for r in caplog.records)


def test_rest_outcomes_become_the_api_series():
    metrics = Metrics()
    metrics.add_account(ACCOUNT, environment="testnet", mode="observer")
    observer = RestMetrics(metrics, ACCOUNT, "testnet")
    observer.requested("open_orders")
    observer.duration("open_orders", 0.05)
    observer.failed("open_orders", "10006")
    observer.failed("open_orders", "123456")  # an undocumented code: "other"
    observer.invalid_value("X-Bapi-Limit")
    observer.rate_limit("open_orders", 7, None)
    observer.clock_skew(-0.25)
    assert value(metrics, "bybit_dcp_api_requests_total", account=ACCOUNT, endpoint="open_orders") == 1
    assert value(metrics, "bybit_dcp_api_request_duration_seconds_count", environment="testnet", endpoint="open_orders")
    assert value(metrics, "bybit_dcp_api_errors_total", account=ACCOUNT, endpoint="open_orders", code="10006") == 1
    assert value(metrics, "bybit_dcp_api_errors_total", account=ACCOUNT, endpoint="open_orders", code="other") == 1
    assert value(metrics, "bybit_dcp_api_failures_total", account=ACCOUNT, endpoint="open_orders") == 2
    assert value(metrics, "bybit_dcp_invalid_values_total", account=ACCOUNT, field="X-Bapi-Limit") == 1
    assert value(metrics, "bybit_dcp_api_rate_limit_remaining", account=ACCOUNT, endpoint="open_orders") == 7
    assert value(metrics, "bybit_dcp_api_rate_limit", account=ACCOUNT, endpoint="open_orders") is None
    assert value(metrics, "bybit_dcp_clock_skew_seconds", account=ACCOUNT) == -0.25
    pool = PoolMetrics(metrics)
    pool.connection_wait(0.01)
    pool.connection_opened()
    assert value(metrics, "bybit_dcp_api_connections_opened_total") == 1


def test_the_drills_rest_observer_counts_nothing_and_keeps_the_warnings(caplog):
    caplog.set_level(logging.WARNING)
    drill = RestLog("drill")
    drill.requested("create_order")
    drill.failed("create_order", "10001")
    drill.paused("tickers", "10006", 1.0)
    assert [r.getMessage() for r in caplog.records] == ["rate limited by Bybit; pausing this endpoint"]


def test_a_clock_reading_that_agrees_is_no_warning_and_one_a_second_off_is(caplog):
    # Bybit's time is read at every stream start: on a host whose clock is right that is routine.
    caplog.set_level(logging.DEBUG, logger="exporter.bybit.rest")
    log = RestLog(ACCOUNT)
    log.resynced(0.004)
    log.resynced(-0.6)
    log.resynced(-1.5)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.getMessage(), r.offset_seconds) for r in warnings] == [
        ("local clock disagrees with Bybit; signing with a corrected time", -1.5)
    ]
    assert len(caplog.records) == 3
