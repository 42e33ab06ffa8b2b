"""One account's metrics at one moment, read from the registry (pure: families in, snapshots out).

Only the families the board needs are collected (not the whole registry: the process
collector reads /proc, and the latency histograms are many series), so sampling every few
seconds stays cheap with a thousand accounts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import Metric

from ..metrics import Metrics

# The Metrics attributes the board reads; each is a collector of one family.
SOURCES = (
    "account_info",
    "up",
    "enabled",
    "window",
    "desired_window",
    "drift",
    "last_poll_success",
    "last_poll_error",
    "api_errors",
    "ws_connected",
    "ws_reconnects",
    "ws_rtt",
    "ws_last_pong",
    "ws_ping_interval",
    "ws_pong_timeout",
    "ping_gap",
    "ws_dcp_subscribed",
    "cancelled_orders",
    "triggers",
    "last_trigger",
    "reassert_attempts",
    "reassert_failures",
    "reassert_last_success",
    "reassert_blocked",
    "guardian_armed",
    "guardian_transitions",
    "drill_last_success",
    "drill_last_run",
    "drill_trigger_delay",
)
# The label that tells series of one account apart; the others (endpoint) are summed over.
KEY_LABELS = ("product", "category", "reason", "code", "to")
RTT_BUCKET = "bybit_dcp_ws_ping_rtt_seconds_bucket"


@dataclass
class Snapshot:
    """Every sample of one account: ``series[name][key]`` with key the product, category,
    reason, code or ``to`` label ("" for an account-wide series)."""

    account: str
    series: dict[str, dict[str, float]] = field(default_factory=dict)
    environment: str = ""
    mode: str = ""
    error_code: str | None = None
    error_hint: str = ""
    rtt_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), +Inf last

    def get(self, name: str, key: str = "") -> float | None:
        return self.series.get(name, {}).get(key)

    def by(self, name: str) -> Mapping[str, float]:
        return self.series.get(name, {})

    def flag(self, name: str, key: str = "") -> bool:
        return bool(self.get(name, key))


def collect(metrics: Metrics) -> list[Metric]:
    return [family for source in SOURCES for family in getattr(metrics, source).collect()]


def read(families: Iterable[Metric]) -> dict[str, Snapshot]:
    """Per account, every sample of ``families``."""
    snapshots: dict[str, Snapshot] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            account = labels.get("account")
            if account is None:
                continue
            snap = snapshots.get(account)
            if snap is None:
                snap = snapshots[account] = Snapshot(account)
            name = sample.name
            if name == RTT_BUCKET:
                buckets.setdefault(account, []).append((float(labels["le"]), sample.value))
            elif name == "bybit_dcp_last_poll_error_info":
                snap.error_code, snap.error_hint = labels["code"], labels["hint"]
            elif name == "bybit_dcp_account_info":
                snap.environment, snap.mode = labels["environment"], labels["mode"]
            else:
                key = next((labels[k] for k in KEY_LABELS if k in labels), "")
                values = snap.series.setdefault(name, {})
                values[key] = values.get(key, 0.0) + sample.value
    for account, pairs in buckets.items():
        snapshots[account].rtt_buckets = tuple(sorted(pairs, key=lambda p: p[0]))
    return snapshots


def quantile(q: float, buckets: tuple[tuple[float, float], ...], earlier: tuple[tuple[float, float], ...]) -> float:
    """The q-quantile of the observations between two readings of a cumulative histogram,
    interpolated within a bucket as Prometheus' ``histogram_quantile`` does; NaN without any."""
    before = dict(earlier)
    counts = [(le, count - before.get(le, 0.0)) for le, count in buckets]
    if not counts or counts[-1][1] <= 0:
        return math.nan
    rank = q * counts[-1][1]
    lower, below = 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= rank:
            if math.isinf(le):
                return lower  # the highest finite bound, as Prometheus answers
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower
