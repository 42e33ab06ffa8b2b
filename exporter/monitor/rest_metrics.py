"""The exporter's ears on its REST calls: what a :class:`~exporter.bybit.rest.RestClient` reports, as metrics and log lines.

:class:`RestMetrics` is one account's (requests, failures by code, invalid values and
rate-limit headroom by account, the latency by environment, the clock skew);
:class:`PoolMetrics` is the fleet's one session's (the wait for a pooled connection and the
new TCP connections, from the trace hooks of :func:`exporter.bybit.wire.session_tracing`).
Label children are looked up as each call needs them, as they were before the split.
"""

from __future__ import annotations

import logging

from ..bybit.errors import code_label
from ..metrics import Metrics

log = logging.getLogger("exporter.bybit.rest")


class RestMetrics:
    def __init__(self, metrics: Metrics, account: str, environment: str) -> None:
        self.metrics = metrics
        self.account = account
        self.environment = environment  # the REST latency is labelled by it, not by the account

    def requested(self, endpoint: str) -> None:
        self.metrics.api_requests.labels(self.account, endpoint).inc()

    def duration(self, endpoint: str, seconds: float) -> None:
        self.metrics.api_duration.labels(self.environment, endpoint).observe(seconds)

    def failed(self, endpoint: str, code: str) -> None:
        self.metrics.api_errors.labels(self.account, endpoint, code_label(code)).inc()

    def invalid_value(self, field: str) -> None:
        self.metrics.invalid_values.labels(self.account, field).inc()

    def rate_limit(self, endpoint: str, remaining: float | None, limit: float | None) -> None:
        if remaining is not None:
            self.metrics.rate_limit_remaining.labels(self.account, endpoint).set(remaining)
        if limit is not None:
            self.metrics.rate_limit.labels(self.account, endpoint).set(limit)

    def clock_skew(self, seconds: float) -> None:
        self.metrics.clock_skew.labels(self.account).set(seconds)

    def paused(self, endpoint: str, code: str, reset_at: float | None) -> None:
        log_pause(self.account, endpoint, code, reset_at)

    def resynced(self, offset: float) -> None:
        log_resync(self.account, offset)


class PoolMetrics:
    """The fleet's session: ``bybit_dcp_api_connection_wait_seconds`` and ``bybit_dcp_api_connections_opened_total``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def connection_wait(self, seconds: float) -> None:
        self.metrics.api_connection_wait.observe(seconds)

    def connection_opened(self) -> None:
        self.metrics.api_connections_opened.inc()


def log_pause(account: str, endpoint: str, code: str, reset_at: float | None) -> None:
    log.warning(
        "IP banned by Bybit; pausing every call to this host"
        if code == "403"
        else "rate limited by Bybit; pausing this endpoint",
        extra={"account": account, "endpoint": endpoint, "code": code, "reset_at": reset_at},
    )


def log_resync(account: str, offset: float) -> None:
    log.warning(
        "local clock disagrees with Bybit; signing with a corrected time",
        extra={"account": account, "offset_seconds": round(offset, 3)},
    )
