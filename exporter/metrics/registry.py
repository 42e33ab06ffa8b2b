"""The registry the exporter records into, built from the metric specs (:mod:`.specs`).

Dashboards and alert rules depend on the specs' names and labels: add metrics freely,
never rename one. Each :class:`Metrics` owns its own registry so that tests (and
one process watching many accounts) never share global state.

Values that depend on "now" (the ping gap) are computed at scrape time by
:class:`PingGapCollector`, not by a timer.

Per-account series live in :mod:`.labelled` (a slotted object per label set, no
locks), which keeps prometheus_client's API and exposition at a fraction of its memory;
the few process-wide series without labels stay prometheus_client's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

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

from .. import __version__
from ..dcp import CATEGORIES, CLOCK_SOURCES, MONITOR_ENDPOINTS, PRODUCTS
from . import specs
from .labelled import Kept, LabelledCounter, LabelledGauge, LabelledHistogram, Readout, Row
from .specs import ADD_ACCOUNT, COUNTER, GAUGE, PROCESS, RECORDED, RTT_BUCKETS, START, MetricSpec

__all__ = ["DOMAINS", "ENDPOINTS", "RTT_BUCKETS", "Metrics"]

# Known REST endpoints, labelled by a short stable name rather than the URL path.
ENDPOINTS = MONITOR_ENDPOINTS  # from the one table of REST calls, exporter/dcp.py
RECONNECT_REASONS = ("closed", "pong_timeout", "error", "auth_failed", "subscribe_failed", "redirect")

# The `_created` samples double the counter series for nothing a dashboard or alert uses.
disable_created_metrics()

# The known values of the labels an AtZero rule's ``each`` names ("to" is the guardian's own).
DOMAINS: dict[str, tuple[str, ...]] = {
    "product": PRODUCTS,
    "category": CATEGORIES,
    "endpoint": ENDPOINTS,
    "reason": RECONNECT_REASONS,
    "source": CLOCK_SOURCES,
}

GapSource = Callable[[], float | None]


class PingGapCollector(Collector):
    """``bybit_dcp_ws_ping_gap_seconds``: seconds since each account's last pong, at scrape time.

    Each account registers a callable giving the unix time of its last pong (or of
    the stream's start when no pong was ever seen), so the gap keeps growing while a
    connection is silent even though nothing updates a gauge.
    """

    def __init__(self, clock: Callable[[], float] = time.time, spec: MetricSpec = specs.PING_GAP) -> None:
        self._sources: dict[str, GapSource] = {}
        self._clock = clock
        # The same "seconds since a unix time, per account" serves the guardian's liveness age.
        self._name, self._documentation, self._labels = spec.name, spec.help, list(spec.labels)
        self._readout = Readout(spec.kind, spec.name, spec.help, spec.labels)

    def set_source(self, account: str, last_pong: GapSource) -> None:
        self._sources[account] = last_pong

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._documentation, labels=self._labels)

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        rows: list[Row] = []
        for account, source in list(self._sources.items()):
            since = source()
            if since is not None:
                rows.append(((account,), max(0.0, now - since)))
        yield self._readout.read(rows)


class ApiFailuresCollector(Collector, Kept):
    """``bybit_dcp_api_failures_total{account,endpoint}``: ``bybit_dcp_api_errors_total`` summed over codes.

    A code's series appears with its first error, which ``increase()`` cannot see; this sum
    exists at 0 for every known endpoint from the start, so an alert sees the first failure.
    Worked out from the errors alone, it stays the same as long as they do (``state``), and a
    scrape reuses its text from the last one (see :func:`.labelled.writer`).
    """

    def __init__(self, errors: LabelledCounter, spec: MetricSpec = specs.API_FAILURES) -> None:
        self._errors = errors
        # By account, its endpoints: the one tuple of them all accounts share (add_account's domain).
        self._known: dict[str, tuple[str, ...]] = {}
        self._added = 0
        self._name, self._help, self._labels = spec.name, spec.help, list(spec.labels)
        self._readout = Readout(spec.kind, spec.name, spec.help, spec.labels)
        self.pieces = {}

    def add(self, account: str, endpoints: tuple[str, ...]) -> None:
        known = self._known.get(account)
        if known is None or set(endpoints) - set(known):
            self._known[account] = endpoints if known is None else tuple(dict.fromkeys((*known, *endpoints)))
            self._added += 1

    def describe(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._help, labels=self._labels)

    def state(self) -> object:
        return (self._errors.changes, self._added)

    def rows(self) -> list[Row]:
        known = list(self._known.items())  # one step: a reader in another thread while an account is added
        totals = {(account, endpoint): 0.0 for account, endpoints in known for endpoint in endpoints}
        for (account, endpoint, _code), value in self._errors.rows():
            totals[account, endpoint] = totals.get((account, endpoint), 0.0) + value  # type: ignore[operator]
        return sorted(totals.items())

    def text_parts(self, rows: list[Row], openmetrics: bool) -> Iterator[str]:
        return self._readout.text_parts(rows, openmetrics)

    def collect(self) -> Iterable[Metric]:
        yield self._readout.read(self.rows())


Keys = dict[tuple[str, ...], tuple[str, ...]]
Series = Callable[[str, Mapping[str, Any], Mapping[str, int], Keys], None]


class TaskCountCollector(Collector):
    """``bybit_dcp_exporter_tasks``: the asyncio tasks alive in the exporter's event loop, at scrape time.

    The loop is the one running where the metrics were created (the exporter's: a reader in
    a worker thread, such as an encoder other than the direct writer's, has none), else the one running the scrape;
    without either there is no sample rather than a wrong one. ``asyncio.all_tasks`` copies
    the loop's task set in a way that is safe from another thread.
    """

    def __init__(self, spec: MetricSpec) -> None:
        self._spec = spec
        self._loop = _running_loop()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._spec.name, self._spec.help)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self._spec.name, self._spec.help)
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
    """The metric contract, built from :data:`.specs.SPECS`: one attribute per spec (``attr``).

    The annotations are for the type checker only; the attributes are made from the table
    (a test holds the two together).
    """

    up: LabelledGauge
    enabled: LabelledGauge
    window: LabelledGauge
    desired_window: LabelledGauge
    drift: LabelledGauge
    last_poll_success: LabelledGauge
    poll_interval: LabelledGauge
    last_poll_error: LabelledGauge
    unified_margin_status: LabelledGauge
    unprotected_category: LabelledGauge
    api_requests: LabelledCounter
    api_errors: LabelledCounter
    api_failures: ApiFailuresCollector
    api_duration: LabelledHistogram
    api_connection_wait: Histogram
    api_connections_opened: Counter
    rate_limit_remaining: LabelledGauge
    rate_limit: LabelledGauge
    clock_skew: LabelledGauge
    clock_skew_refused: LabelledCounter
    invalid_values: LabelledCounter
    backfill_failures: LabelledCounter
    ws_connected: LabelledGauge
    ws_reconnects: LabelledCounter
    ws_rtt: LabelledHistogram
    ws_last_pong: LabelledGauge
    ws_heartbeat_gap: LabelledHistogram
    ws_pong_timeouts: LabelledCounter
    ws_dcp_subscribed: LabelledGauge
    ws_invalid_messages: LabelledCounter
    ws_ping_interval: LabelledGauge
    ws_pong_timeout: LabelledGauge
    ping_gap: PingGapCollector
    cancelled_orders: LabelledCounter
    triggers: LabelledCounter
    ignored_cancels: LabelledCounter
    last_trigger: LabelledGauge
    trigger_info: LabelledGauge
    reassert_attempts: LabelledCounter
    reassert_failures: LabelledCounter
    reassert_last_success: LabelledGauge
    reassert_blocked: LabelledGauge
    guardian_armed: LabelledGauge
    guardian_transitions: LabelledCounter
    guardian_liveness_rejected: LabelledCounter
    guardian_liveness_errors: LabelledCounter
    guardian_liveness_age: PingGapCollector
    drill_last_success: LabelledGauge
    drill_last_run: LabelledGauge
    drill_trigger_delay: LabelledGauge
    event_loop_lag: Histogram
    account_info: LabelledGauge
    build_info: LabelledGauge
    shard_info: LabelledGauge
    shard_accounts: Gauge
    exporter_tasks: TaskCountCollector

    def __init__(self, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._at_add: list[Series] = []
        at_start = {"version": __version__}
        process = False
        for spec in specs.SPECS:
            if spec.source == PROCESS:
                if not process:  # process_cpu_seconds_total, process_resident_memory_bytes ... (Linux)
                    ProcessCollector(registry=self.registry)
                    process = True
                continue
            family = self._build(spec, clock)
            setattr(self, spec.attr, family)
            rule = spec.at_zero
            if rule is not None and rule.by == ADD_ACCOUNT:
                self._at_add.append(_series(spec, family))
            elif rule is not None and rule.by == START and spec.labels:
                labels = [at_start[name] for name in spec.labels]
                family.labels(*labels).set(rule.value)

    def _build(self, spec: MetricSpec, clock: Callable[[], float]) -> Any:
        reg = self.registry
        if spec.source == specs.TASKS:
            tasks = TaskCountCollector(spec)
            reg.register(tasks)
            return tasks
        if spec.source == specs.AT_SCRAPE:
            collector: Collector = PingGapCollector(clock, spec)
            reg.register(collector)
            return collector
        if spec.source == specs.SUM:
            assert spec.of is not None
            collector = ApiFailuresCollector(getattr(self, spec.of.attr), spec)
            reg.register(collector)
            return collector
        assert spec.source == RECORDED, spec
        if spec.labels:
            if spec.kind == GAUGE:
                return LabelledGauge(spec.name, spec.help, spec.labels, registry=reg)
            if spec.kind == COUNTER:
                return LabelledCounter(spec.name, spec.help, spec.labels, registry=reg)
            assert spec.buckets is not None, spec
            return LabelledHistogram(spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=reg)
        if spec.kind == GAUGE:
            return Gauge(spec.name, spec.help, registry=reg)
        if spec.kind == COUNTER:
            return Counter(spec.name, spec.help, registry=reg)
        assert spec.buckets is not None, spec
        return Histogram(spec.name, spec.help, buckets=spec.buckets, registry=reg)

    def family(self, spec: MetricSpec) -> Collector:
        """The collector of one spec's family (``metrics.family(specs.UP)`` is ``metrics.up``)."""
        return getattr(self, spec.attr)

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
        """Create every series known in advance for an account, by each spec's ``at_zero`` rule.

        Not ``bybit_dcp_enabled``: before the first good DCP-config poll the state is unknown,
        and a 0 would say "not enabled". Drift and re-assertion exist only where a window is
        wanted: elsewhere neither can happen, and 9,000 series of zeros for 1,000 observers
        would only slow every scrape.
        """
        given = {
            "environment": environment,
            "mode": mode,
            "ping_interval": ping_interval,
            "pong_timeout": pong_timeout,
            "poll_interval": poll_interval,
        }
        desired = desired_windows or {}
        keys: Keys = {}  # one tuple per label set, whichever families hold it: (account,) is in twenty
        for create in self._at_add:
            create(account, given, desired, keys)


def _series(spec: MetricSpec, family: Any) -> Series:
    """What ``add_account`` does for one spec, worked out once, so that each account costs
    only its ``labels`` calls: the label values after the account, and the first value.

    A gauge's series is set (to 0, 1 or the configured value); a counter's or a histogram's is
    only created, at 0, so adding an account again never takes a count back.
    """
    rule = spec.at_zero
    assert rule is not None
    if spec.source == specs.SUM:  # a sum exists for every known value of its label, before any error
        domain = DOMAINS[rule.each]
        return lambda account, given, desired, keys: family.add(account, domain)
    known, gauge = family.known, spec.kind == GAUGE
    if rule.each and rule.only == "desired":
        from_config = rule.value == "desired_windows"

        also = rule.and_each

        def desired_products(account: str, given: Mapping[str, Any], desired: Mapping[str, int], keys: Keys) -> None:
            for product, window in desired.items():
                for key in [(account, product, value) for value in also] if also else [(account, product)]:
                    series = known(keys.setdefault(key, key))
                    if gauge:
                        series.set(window if from_config else rule.value)

        return desired_products
    if rule.each:
        assert not rule.only, spec
        domain = DOMAINS[rule.each]

        def every_value(account: str, given: Mapping[str, Any], desired: Mapping[str, int], keys: Keys) -> None:
            for value in domain:
                key = (account, value)
                series = known(keys.setdefault(key, key))
                if gauge:
                    series.set(rule.value)

        return every_value
    if isinstance(rule.value, str):  # a configured value, when there is one
        argument = rule.value

        def configured(account: str, given: Mapping[str, Any], desired: Mapping[str, int], keys: Keys) -> None:
            value = given[argument]
            if value is not None:
                key = (account,)
                known(keys.setdefault(key, key)).set(value)

        return configured
    # Any other label is add_account's argument of its name (account_info's environment and mode).
    names, first = spec.labels[1:], rule.value

    def per_account(account: str, given: Mapping[str, Any], desired: Mapping[str, int], keys: Keys) -> None:
        key = (account, *(given[name] for name in names)) if names else (account,)
        series = known(keys.setdefault(key, key))
        if gauge:
            series.set(first)

    return per_account
