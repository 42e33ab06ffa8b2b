"""Every metric the exporter exposes, defined in one place (the metric contract).

Dashboards and alert rules depend on these names and labels: add metrics freely,
never rename one. Each :class:`Metrics` owns its own registry so that tests (and
one process watching many accounts) never share global state.

Values that depend on "now" (the ping gap) are computed at scrape time by
:class:`PingGapCollector`, not by a timer.

Per-account series live in :mod:`.labelled_metrics` (a slotted object per label set, no
locks), which keeps prometheus_client's API and exposition at a fraction of its memory;
the few process-wide series without labels stay prometheus_client's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .dcp import CATEGORIES, PRODUCTS, REASSERT_BLOCK_REASONS
from .labelled_metrics import LabelledCounter, LabelledGauge, LabelledHistogram, Readout, Row

# Known REST endpoints, labelled by a short stable name rather than the URL path.
ENDPOINTS = ("server_time", "query_dcp_info", "set_dcp", "order_history")
RECONNECT_REASONS = ("closed", "pong_timeout", "error", "auth_failed", "subscribe_failed", "redirect")

# The `_created` samples double the counter series for nothing a dashboard or alert uses.
disable_created_metrics()

RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
HEARTBEAT_GAP_BUCKETS = (1, 2.5, 5, 10, 15, 20, 25, 30, 45, 60, 120, 300)
API_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONNECTION_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

GapSource = Callable[[], float | None]


class PingGapCollector(Collector):
    """``bybit_dcp_ws_ping_gap_seconds``: seconds since each account's last pong, at scrape time.

    Each account registers a callable giving the unix time of its last pong (or of
    the stream's start when no pong was ever seen), so the gap keeps growing while a
    connection is silent even though nothing updates a gauge.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        name: str = "bybit_dcp_ws_ping_gap_seconds",
        documentation: str = "",
    ) -> None:
        self._sources: dict[str, GapSource] = {}
        self._clock = clock
        # The same "seconds since a unix time, per account" serves the guardian's liveness age.
        self._name = name
        self._documentation = documentation or _PING_GAP_HELP
        self._readout = Readout("gauge", name, self._documentation, ["account"])

    def set_source(self, account: str, last_pong: GapSource) -> None:
        self._sources[account] = last_pong

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._documentation, labels=["account"])

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        rows: list[Row] = []
        for account, source in list(self._sources.items()):
            since = source()
            if since is not None:
                rows.append(((account,), max(0.0, now - since)))
        yield self._readout.read(rows)


_PING_GAP_HELP = "Seconds since the last pong on the account's private stream, computed at scrape time."


class ApiFailuresCollector(Collector):
    """``bybit_dcp_api_failures_total{account,endpoint}``: ``bybit_dcp_api_errors_total`` summed over codes.

    A code's series appears with its first error, which ``increase()`` cannot see; this sum
    exists at 0 for every known endpoint from the start, so an alert sees the first failure.
    """

    NAME = "bybit_dcp_api_failures"
    HELP = "Failed REST calls, all codes together; 0 from the start for every known endpoint."

    def __init__(self, errors: LabelledCounter) -> None:
        self._errors = errors
        self._known: set[tuple[str, str]] = set()
        self._readout = Readout("counter", self.NAME, self.HELP, ["account", "endpoint"])

    def add(self, account: str, endpoints: Iterable[str]) -> None:
        self._known.update((account, endpoint) for endpoint in endpoints)

    def describe(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self.NAME, self.HELP, labels=["account", "endpoint"])

    def collect(self) -> Iterable[Metric]:
        totals = dict.fromkeys(self._known, 0.0)
        for (account, endpoint, _code), value in self._errors.rows():
            totals[account, endpoint] = totals.get((account, endpoint), 0.0) + value  # type: ignore[operator]
        yield self._readout.read(sorted(totals.items()))


class TaskCountCollector(Collector):
    """``bybit_dcp_exporter_tasks``: the asyncio tasks alive in the exporter's event loop, at scrape time.

    A task that is never awaited or cancelled (a reconnect that leaks its reader, a set that
    never ends) grows this one by one; nothing else shows it until memory does. The loop is
    the one running where the metrics were created (the exporter's: the scrape itself is
    rendered in a worker thread, which has none), else the one running the scrape; without
    either there is no sample rather than a wrong one. ``asyncio.all_tasks`` copies the
    loop's task set in a way that is safe from another thread.
    """

    NAME = "bybit_dcp_exporter_tasks"
    HELP = "asyncio tasks alive in the exporter's event loop, counted at scrape time (a steady rise is a leak)."

    def __init__(self) -> None:
        self._loop = _running_loop()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.NAME, self.HELP)
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else _running_loop()
        if loop is not None:
            family.add_metric([], len(asyncio.all_tasks(loop)))
        yield family


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Metrics:
    """The metric contract (see README's metric table)."""

    def __init__(self, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        by_account = ["account"]
        by_product = ["account", "product"]
        by_category = ["account", "category"]
        by_endpoint = ["account", "endpoint"]

        # DCP configuration, from GET /v5/account/query-dcp-info
        self.up = LabelledGauge("bybit_dcp_up", "1 if the last DCP-config poll succeeded.", by_account, registry=reg)
        self.enabled = LabelledGauge(
            "bybit_dcp_enabled", "1 if Bybit lists the product with DCP ON.", by_product, registry=reg
        )
        self.window = LabelledGauge(
            "bybit_dcp_window_seconds", "DCP window Bybit reports for an enabled product.", by_product, registry=reg
        )
        self.desired_window = LabelledGauge(
            "bybit_dcp_desired_window_seconds", "DCP window the configuration asks for.", by_product, registry=reg
        )
        self.drift = LabelledGauge(
            "bybit_dcp_window_drift",
            "1 if a desired window is set and Bybit reports another window or none.",
            by_product,
            registry=reg,
        )
        self.last_poll_success = LabelledGauge(
            "bybit_dcp_last_poll_success_timestamp_seconds",
            "Unix time of the last good DCP-config poll.",
            by_account,
            registry=reg,
        )
        self.poll_interval = LabelledGauge(
            "bybit_dcp_poll_interval_seconds", "Configured DCP-config poll interval.", by_account, registry=reg
        )
        self.last_poll_error = LabelledGauge(
            "bybit_dcp_last_poll_error_info",
            "1 while the DCP-config poll fails: the failure's code and what to do (hint); gone after a good poll.",
            ["account", "code", "hint"],
            registry=reg,
        )

        # REST API
        self.api_requests = LabelledCounter("bybit_dcp_api_requests", "REST calls made.", by_endpoint, registry=reg)
        self.api_errors = LabelledCounter(
            "bybit_dcp_api_errors",
            "Failed REST calls; code is a documented Bybit retCode, an HTTP status, 'timeout', 'network', "
            "'invalid' (no usable result), 'redirect' (never followed) or 'other'.",
            by_endpoint + ["code"],
            registry=reg,
        )
        self.api_failures = ApiFailuresCollector(self.api_errors)
        reg.register(self.api_failures)
        # Per environment and endpoint, not per account: the latency is Bybit's and the
        # network's, the same for every account on a host, and per account it was 30 % of a
        # 1,000-account scrape. Per-account failures are in bybit_dcp_api_errors_total.
        self.api_duration = LabelledHistogram(
            "bybit_dcp_api_request_duration_seconds",
            "REST call latency, from the moment the call has its connection to the end of the body "
            "(the wait for a pool slot is bybit_dcp_api_connection_wait_seconds).",
            ["environment", "endpoint"],
            buckets=API_DURATION_BUCKETS,
            registry=reg,
        )
        self.api_connection_wait = Histogram(
            "bybit_dcp_api_connection_wait_seconds",
            "Wait for a free connection in the REST pool before a call (0 when one was free): the exporter's own queue.",
            buckets=CONNECTION_WAIT_BUCKETS,
            registry=reg,
        )
        self.api_connections_opened = Counter(
            "bybit_dcp_api_connections_opened",
            "TCP connections the REST pool opened; flat in steady state (keep-alive outlives the poll interval).",
            registry=reg,
        )
        self.rate_limit_remaining = LabelledGauge(
            "bybit_dcp_api_rate_limit_remaining",
            "Requests left in the window, from X-Bapi-Limit-Status.",
            by_endpoint,
            registry=reg,
        )
        self.rate_limit = LabelledGauge(
            "bybit_dcp_api_rate_limit", "Requests allowed per window, from X-Bapi-Limit.", by_endpoint, registry=reg
        )
        self.clock_skew = LabelledGauge(
            "bybit_dcp_clock_skew_seconds", "Bybit time minus local time.", by_account, registry=reg
        )
        self.invalid_values = LabelledCounter(
            "bybit_dcp_invalid_values",
            "Numbers from Bybit outside their sane range (a timestamp, a reset time, a header count), "
            "by field; each was left unused.",
            ["account", "field"],
            registry=reg,
        )
        self.backfill_failures = LabelledCounter(
            "bybit_dcp_backfill_failures",
            "Order-history backfills of one category that stopped early (an error or an unusable answer).",
            by_category,
            registry=reg,
        )

        # Private websocket stream
        self.ws_connected = LabelledGauge(
            "bybit_dcp_ws_connected",
            "1 while the private stream is authenticated and subscribed.",
            by_account,
            registry=reg,
        )
        self.ws_reconnects = LabelledCounter(
            "bybit_dcp_ws_reconnects", "Private-stream reconnects by reason.", ["account", "reason"], registry=reg
        )
        self.ws_rtt = LabelledHistogram(
            "bybit_dcp_ws_ping_rtt_seconds",
            "JSON ping to pong round-trip time, from the ping written to the pong read off the socket.",
            by_account,
            buckets=RTT_BUCKETS,
            registry=reg,
        )
        self.ws_last_pong = LabelledGauge(
            "bybit_dcp_ws_last_pong_timestamp_seconds", "Unix time of the last pong.", by_account, registry=reg
        )
        self.ws_heartbeat_gap = LabelledHistogram(
            "bybit_dcp_ws_heartbeat_gap_seconds",
            "Each gap between consecutive pongs, across reconnects.",
            by_account,
            buckets=HEARTBEAT_GAP_BUCKETS,
            registry=reg,
        )
        self.ws_pong_timeouts = LabelledCounter(
            "bybit_dcp_ws_pong_timeouts", "Pings that got no pong in time.", by_account, registry=reg
        )
        self.ws_dcp_subscribed = LabelledGauge(
            "bybit_dcp_ws_dcp_subscribed",
            "1 while this exporter's connection holds an acknowledged dcp.* subscription (guardian mode).",
            by_product,
            registry=reg,
        )
        self.ws_invalid_messages = LabelledCounter(
            "bybit_dcp_ws_invalid_messages", "Frames that could not be understood.", by_account, registry=reg
        )
        self.ws_ping_interval = LabelledGauge(
            "bybit_dcp_ws_ping_interval_seconds", "Configured heartbeat (JSON ping) interval.", by_account, registry=reg
        )
        self.ws_pong_timeout = LabelledGauge(
            "bybit_dcp_ws_pong_timeout_seconds",
            "Configured wait for a pong before reconnecting.",
            by_account,
            registry=reg,
        )
        self.ping_gap = PingGapCollector(clock)
        reg.register(self.ping_gap)

        # DCP triggers
        self.cancelled_orders = LabelledCounter(
            "bybit_dcp_cancelled_orders",
            "Orders cancelled with cancelType CancelByDCP, each order once.",
            by_category,
            registry=reg,
        )
        self.triggers = LabelledCounter(
            "bybit_dcp_triggers",
            "DCP trigger events (a burst of CancelByDCP cancels is one).",
            by_product,
            registry=reg,
        )
        self.ignored_cancels = LabelledCounter(
            "bybit_dcp_ignored_cancels",
            "CancelByDCP orders that could not be counted: no orderId, a category or an orderStatus Bybit does not document.",
            by_account,
            registry=reg,
        )
        self.last_trigger = LabelledGauge(
            "bybit_dcp_last_trigger_timestamp_seconds", "Unix time of the last DCP trigger.", by_product, registry=reg
        )
        self.trigger_info = LabelledGauge(
            "bybit_dcp_trigger_info",
            "1 for each of the last few DCP triggers of a product; trigger is its first cancel's updatedTime in ms, "
            "so every trigger is an alert of its own.",
            ["account", "product", "trigger"],
            registry=reg,
        )

        # Re-assertion of the desired window
        self.reassert_attempts = LabelledCounter(
            "bybit_dcp_reassert_attempts", "DCP window re-assertions sent.", by_product, registry=reg
        )
        self.reassert_failures = LabelledCounter(
            "bybit_dcp_reassert_failures", "DCP window re-assertions that failed.", by_product, registry=reg
        )
        self.reassert_last_success = LabelledGauge(
            "bybit_dcp_reassert_last_success_timestamp_seconds",
            "Unix time of the last verified re-assertion.",
            by_product,
            registry=reg,
        )
        self.reassert_blocked = LabelledGauge(
            "bybit_dcp_reassert_blocked",
            "1 while re-assertion is stopped for the product: reason=credentials (a key, permission or IP error; "
            "until config changes and a restart) or reason=contended (another writer undoes the sets; until the "
            "window stays unchanged for 15 minutes, or a restart).",
            ["account", "product", "reason"],
            registry=reg,
        )

        # Guardian liveness: the dcp.* switch held for a bot while it shows signs of life
        self.guardian_armed = LabelledGauge(
            "bybit_dcp_guardian_armed",
            "1 while the guardian holds the product's dcp.* switch for a live bot (its guarded connection is up).",
            by_product,
            registry=reg,
        )
        self.guardian_transitions = LabelledCounter(
            "bybit_dcp_guardian_transitions",
            "Guardian switch changes: to=armed (the bot showed life), to=released (it stopped: DCP may fire).",
            ["account", "to"],
            registry=reg,
        )
        self.guardian_liveness_rejected = LabelledCounter(
            "bybit_dcp_guardian_liveness_rejected",
            "Liveness calls refused for a missing or wrong bearer token (HTTP 401); they never arm the guardian.",
            by_account,
            registry=reg,
        )
        self.guardian_liveness_age = PingGapCollector(
            clock,
            name="bybit_dcp_guardian_liveness_age_seconds",
            documentation="Seconds since the bot's last sign of life, computed at scrape time.",
        )
        reg.register(self.guardian_liveness_age)

        # DCP drills: a canary order, an armed connection cut on purpose, DCP's cancel timed
        self.drill_last_success = LabelledGauge(
            "bybit_dcp_drill_last_success",
            "1 if the last drill saw DCP cancel the canary within window + tolerance and nothing else; else 0.",
            by_product,
            registry=reg,
        )
        self.drill_last_run = LabelledGauge(
            "bybit_dcp_drill_last_run_timestamp_seconds", "Unix time the last drill ended.", by_product, registry=reg
        )
        self.drill_trigger_delay = LabelledGauge(
            "bybit_dcp_drill_trigger_delay_seconds",
            "Seconds from cutting the armed connection to the canary's CancelByDCP, in the last drill that saw it.",
            by_product,
            registry=reg,
        )

        # The exporter itself
        self.event_loop_lag = Histogram(
            "bybit_dcp_exporter_event_loop_lag_seconds",
            "How late the event loop wakes a task that sleeps 0.25 s, sampled 4 times a second: the time a pong "
            "or a REST answer can wait before the exporter reads it.",
            buckets=LOOP_LAG_BUCKETS,
            registry=reg,
        )

        # Identity
        self.account_info = LabelledGauge(
            "bybit_dcp_account_info",
            "Always 1; the account's environment and mode.",
            ["account", "environment", "mode"],
            registry=reg,
        )
        self.build_info = LabelledGauge(
            "bybit_dcp_exporter_build_info", "Always 1; the exporter's version.", ["version"], registry=reg
        )
        self.build_info.labels(__version__).set(1)
        self.shard_info = LabelledGauge(
            "bybit_dcp_exporter_shard_info",
            "Always 1; this replica's shard index and the number of shards.",
            ["shard_index", "shard_count"],
            registry=reg,
        )
        self.shard_accounts = Gauge(
            "bybit_dcp_exporter_shard_accounts", "Accounts this replica watches (its shard).", registry=reg
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds ... (Linux)
        ProcessCollector(registry=reg)
        reg.register(TaskCountCollector())

    def set_shard(self, index: int, count: int, accounts: int) -> None:
        self.shard_info.labels(str(index), str(count)).set(1)
        self.shard_accounts.set(accounts)

    def add_account(
        self,
        account: str,
        *,
        environment: str,
        mode: str,
        desired_windows: Mapping[str, int] | None = None,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> None:
        """Create every series known in advance for an account, at 0.

        Not ``bybit_dcp_enabled``: before the first good DCP-config poll the state is unknown,
        and a 0 would say "not enabled".
        """
        self.account_info.labels(account, environment, mode).set(1)
        self.up.labels(account).set(0)
        self.ws_connected.labels(account).set(0)
        for product in PRODUCTS:
            self.ws_dcp_subscribed.labels(account, product).set(0)
            self.triggers.labels(account, product)
        # Drift and re-assertion exist only where a window is wanted: elsewhere neither can
        # happen, and 9,000 series of zeros for 1,000 observers would only slow every scrape.
        for product, window in (desired_windows or {}).items():
            self.desired_window.labels(account, product).set(window)
            self.drift.labels(account, product).set(0)
            self.reassert_attempts.labels(account, product)
            self.reassert_failures.labels(account, product)
            for reason in REASSERT_BLOCK_REASONS:
                self.reassert_blocked.labels(account, product, reason).set(0)
        for category in CATEGORIES:
            self.cancelled_orders.labels(account, category)
            self.backfill_failures.labels(account, category)
        for endpoint in ENDPOINTS:
            self.api_requests.labels(account, endpoint)
        self.api_failures.add(account, ENDPOINTS)
        for reason in RECONNECT_REASONS:
            self.ws_reconnects.labels(account, reason)
        self.ws_pong_timeouts.labels(account)
        self.ws_invalid_messages.labels(account)
        self.ignored_cancels.labels(account)
        self.ws_rtt.labels(account)
        self.ws_heartbeat_gap.labels(account)
        if ping_interval is not None:
            self.ws_ping_interval.labels(account).set(ping_interval)
        if pong_timeout is not None:
            self.ws_pong_timeout.labels(account).set(pong_timeout)
        if poll_interval is not None:
            self.poll_interval.labels(account).set(poll_interval)
