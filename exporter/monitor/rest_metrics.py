"""The exporter's ears on its REST calls: what a :class:`~exporter.bybit.rest.RestClient` reports, as metrics and log lines.

:class:`RestMetrics` is one account's (requests, failures by code, invalid values and
rate-limit headroom by account, the latency by environment, the clock skew);
:class:`PoolMetrics` is the fleet's one session's (the wait for a pooled connection and the
new TCP connections, from the fleet's :class:`exporter.bybit.wire.TimedConnector`).
Label children are looked up as each call needs them, by ``known`` with the label values as
they come (the account, the environment and the endpoint labels are strings already): every
call of every poll goes through here, and ``labels`` would check and convert each value again.
"""

from __future__ import annotations

from ..bybit.errors import code_label
from ..bybit.observers import RestLog
from ..metrics import Metrics


class RestMetrics(RestLog):
    """One account's REST series, and the client's warnings (:class:`~exporter.bybit.observers.RestLog`)."""

    def __init__(self, metrics: Metrics, account: str, environment: str) -> None:
        super().__init__(account)
        self.metrics = metrics
        self.environment = environment  # the REST latency is labelled by it, not by the account

    def requested(self, endpoint: str) -> None:
        self.metrics.api_requests.known((self.account, endpoint)).inc()

    def duration(self, endpoint: str, seconds: float) -> None:
        self.metrics.api_duration.known((self.environment, endpoint)).observe(seconds)

    def failed(self, endpoint: str, code: str) -> None:
        self.metrics.api_errors.labels(self.account, endpoint, code_label(code)).inc()

    def invalid_value(self, field: str) -> None:
        self.metrics.invalid_values.labels(self.account, field).inc()

    def rate_limit(self, endpoint: str, remaining: float | None, limit: float | None) -> None:
        if remaining is not None:
            self.metrics.rate_limit_remaining.put((self.account, endpoint), remaining)
        if limit is not None:
            self.metrics.rate_limit.put((self.account, endpoint), limit)

    def clock_skew(self, seconds: float) -> None:
        self.metrics.clock_skew.put((self.account,), seconds)


class PoolMetrics:
    """The fleet's session: ``bybit_dcp_api_connection_wait_seconds`` and ``bybit_dcp_api_connections_opened_total``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def connection_wait(self, seconds: float) -> None:
        self.metrics.api_connection_wait.observe(seconds)

    def connection_opened(self) -> None:
        self.metrics.api_connections_opened.inc()
