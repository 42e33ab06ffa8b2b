"""One account's metrics at one moment, read from the registry (pure: families in, snapshots out).

Only the families the board needs are collected (not the whole registry: the process
collector reads /proc, and the latency histograms are many series), so sampling every few
seconds stays cheap with a thousand accounts.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..metrics import Metrics, specs
from ..metrics.labelled import Read
from ..metrics.specs import MetricSpec

# The families the board reads (each the spec of one collector of Metrics).
SOURCES = (
    specs.ACCOUNT_INFO,
    specs.UP,
    specs.ENABLED,
    specs.WINDOW,
    specs.DESIRED_WINDOW,
    specs.DRIFT,
    specs.LAST_POLL_SUCCESS,
    specs.LAST_POLL_ERROR,
    specs.API_ERRORS,
    specs.WS_CONNECTED,
    specs.WS_RECONNECTS,
    specs.WS_RTT,
    specs.WS_LAST_PONG,
    specs.WS_HEARTBEAT_GAP,
    specs.WS_PING_INTERVAL,
    specs.WS_PONG_TIMEOUT,
    specs.PING_GAP,
    specs.WS_DCP_SUBSCRIBED,
    specs.CANCELLED_ORDERS,
    specs.TRIGGERS,
    specs.LAST_TRIGGER,
    specs.REASSERT_ATTEMPTS,
    specs.REASSERT_FAILURES,
    specs.REASSERT_LAST_SUCCESS,
    specs.REASSERT_BLOCKED,
    specs.GUARDIAN_ARMED,
    specs.GUARDIAN_TRANSITIONS,
    specs.DRILL_LAST_SUCCESS,
    specs.DRILL_LAST_RUN,
    specs.DRILL_TRIGGER_DELAY,
    specs.UNIFIED_MARGIN_STATUS,
    specs.UNPROTECTED_CATEGORY,
)
# A sample every few seconds needs only what events.advance and History.record read (a test proves it); pages read all.
SAMPLED_SOURCES = (
    specs.WINDOW,
    specs.DESIRED_WINDOW,
    specs.DRIFT,
    specs.LAST_POLL_ERROR,
    specs.WS_CONNECTED,
    specs.WS_RECONNECTS,
    specs.WS_RTT,
    specs.WS_HEARTBEAT_GAP,
    specs.PING_GAP,
    specs.CANCELLED_ORDERS,
    specs.TRIGGERS,
    specs.LAST_TRIGGER,
    specs.REASSERT_FAILURES,
    specs.REASSERT_LAST_SUCCESS,
    specs.GUARDIAN_TRANSITIONS,
    specs.DRILL_LAST_SUCCESS,
    specs.DRILL_LAST_RUN,
    specs.DRILL_TRIGGER_DELAY,
)
# The label that tells series of one account apart; the others (endpoint) are summed over.
KEY_LABELS = ("product", "category", "reason", "code", "to")
RTT = specs.WS_RTT.name
GAP = specs.WS_HEARTBEAT_GAP.name


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
    rtt_bounds: tuple[float, ...] = ()  # the RTT histogram's bucket bounds, +Inf last (one tuple for all accounts)
    rtt_counts: tuple[float, ...] = ()  # its cumulative count per bucket
    gap_bounds: tuple[float, ...] = ()  # the same of the heartbeat-gap histogram (gaps between pongs)
    gap_counts: tuple[float, ...] = ()

    @property
    def rtt_buckets(self) -> tuple[tuple[float, float], ...]:
        """(upper bound, cumulative count) per bucket, +Inf last."""
        return tuple(zip(self.rtt_bounds, self.rtt_counts, strict=True))

    def get(self, name: str, key: str = "") -> float | None:
        return self.series.get(name, {}).get(key)

    def by(self, name: str) -> Mapping[str, float]:
        return self.series.get(name, {})

    def flag(self, name: str, key: str = "") -> bool:
        return bool(self.get(name, key))

    def only(self, names: Iterable[str]) -> Remembered:
        """The same account with only the series ``names`` (and the poll error): what is worth remembering."""
        kept = [(name, self.series[name]) for name in names if name in self.series]
        layout = Layout.of(tuple((name, tuple(values)) for name, values in kept))
        values = array("d", [value for _, series in kept for value in series.values()])
        return Remembered(self.account, layout, values, self.error_code, self.error_hint)


class Layout:
    """Where each (series, key) of a remembered snapshot sits in its array of values; one per
    distinct shape (the same series with the same keys), shared by every account of that shape."""

    __slots__ = ("_leads", "index", "keys")
    _shared: ClassVar[dict[tuple[tuple[str, tuple[str, ...]], ...], Layout]] = {}
    SHARED_MAX: ClassVar[int] = 4096  # shapes are few (products, categories, reasons); past this many, unshared

    def __init__(self, shape: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        self.index: dict[tuple[str, str], int] = {}
        self.keys: dict[str, tuple[tuple[str, int], ...]] = {}
        self._leads: dict[tuple[str, ...], int | None] = {}
        for name, keys in shape:
            at = len(self.index)
            self.keys[name] = tuple((key, at + i) for i, key in enumerate(keys))
            self.index.update(((name, key), at + i) for i, key in enumerate(keys))

    def lead(self, names: tuple[str, ...]) -> int | None:
        """How many values the series ``names`` hold when they come first (REMEMBERED lays its
        series out in its order); None when one of them comes after another series."""
        if names not in self._leads:
            end: int | None = 0
            ahead = True
            for name, keys in self.keys.items():
                if name not in names:
                    ahead = False
                elif not ahead:
                    end = None
                    break
                elif keys:
                    end = keys[-1][1] + 1
            self._leads[names] = end
        return self._leads[names]

    @classmethod
    def of(cls, shape: tuple[tuple[str, tuple[str, ...]], ...]) -> Layout:
        layout = cls._shared.get(shape)
        if layout is None:
            layout = cls(shape)
            if len(cls._shared) < cls.SHARED_MAX:
                cls._shared[shape] = layout
        return layout


class Remembered:
    """What the sampler keeps of one account's snapshot until the next (:meth:`Snapshot.only`),
    read the same ways (``get``, ``by``, ``flag``, the poll error). The values are one array of
    doubles beside a shared :class:`Layout`: as a snapshot (a dict per series, a float object per
    value) the same dozen numbers took 3 KB per account; this way about 0.3 KB."""

    __slots__ = ("_layout", "_values", "account", "error_code", "error_hint")

    def __init__(
        self, account: str, layout: Layout, values: array[float], error_code: str | None, error_hint: str
    ) -> None:
        self.account = account
        self.error_code = error_code
        self.error_hint = error_hint
        self._layout = layout
        self._values = values

    @property
    def series(self) -> dict[str, dict[str, float]]:
        """A copy, as :attr:`Snapshot.series` has them."""
        return {name: {key: self._values[i] for key, i in keys} for name, keys in self._layout.keys.items()}

    def __repr__(self) -> str:
        return (
            f"Remembered(account={self.account!r}, series={self.series!r}, "
            f"error_code={self.error_code!r}, error_hint={self.error_hint!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Remembered):
            return NotImplemented
        return (self.account, self.series, self.error_code, self.error_hint) == (
            other.account,
            other.series,
            other.error_code,
            other.error_hint,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and mutable no more than a Snapshot

    def agrees(self, other: Remembered, names: tuple[str, ...]) -> bool:
        """The same series ``names`` (the same keys and values, NaN never equal) and the same
        poll error code as ``other``: one compare of two slices of doubles, no dict per series."""
        layout = self._layout
        if other._layout is not layout or other.error_code != self.error_code:
            return False
        end = layout.lead(names)
        return end is not None and self._values[:end] == other._values[:end]

    def get(self, name: str, key: str = "") -> float | None:
        at = self._layout.index.get((name, key))
        return self._values[at] if at is not None else None

    def by(self, name: str) -> Mapping[str, float]:
        return {key: self._values[i] for key, i in self._layout.keys.get(name, ())}

    def flag(self, name: str, key: str = "") -> bool:
        return bool(self.get(name, key))


def collect(metrics: Metrics, sources: Iterable[MetricSpec] = SOURCES) -> list[Read]:
    # Every source is a labelled family, or a collector of one: each yields a Read.
    return [family for source in sources for family in metrics.family(source).collect()]  # type: ignore[misc]


def read(families: Iterable[Read]) -> dict[str, Snapshot]:
    """Per account, every value of ``families``, read from their rows (no Sample per line:
    at 1,000 accounts that is a few ms instead of a tenth of a second)."""
    snapshots: dict[str, Snapshot] = {}
    for family in families:
        names = family.labelnames
        if "account" not in names:
            continue
        at = names.index("account")
        by = next((names.index(k) for k in KEY_LABELS if k in names), None)
        histogram = bool(family.bounds)
        value_name = family.value_name
        count_name, sum_name = f"{family.name}_count", f"{family.name}_sum"  # once a family, not a row
        for labels, value in family.rows:
            account = labels[at]
            snap = snapshots.get(account)
            if snap is None:
                snap = snapshots[account] = Snapshot(account)
            key = labels[by] if by is not None else ""
            if histogram:
                counts = tuple(itertools.accumulate(value[:-1]))  # type: ignore[index]
                _add(snap, count_name, key, counts[-1])
                _add(snap, sum_name, key, value[-1])  # type: ignore[index]
                if family.name == RTT:
                    snap.rtt_bounds, snap.rtt_counts = family.bounds, counts
                elif family.name == GAP:
                    snap.gap_bounds, snap.gap_counts = family.bounds, counts
            elif value_name == specs.LAST_POLL_ERROR.sample:
                snap.error_code, snap.error_hint = labels[names.index("code")], labels[names.index("hint")]
            elif value_name == specs.ACCOUNT_INFO.sample:
                snap.environment, snap.mode = labels[names.index("environment")], labels[names.index("mode")]
            else:
                _add(snap, value_name, key, value)  # type: ignore[arg-type]
    return snapshots


def _add(snap: Snapshot, name: str, key: str, value: float) -> None:
    """Series of one account that share a key (say, one error code at two endpoints) are summed."""
    values = snap.series.setdefault(name, {})
    values[key] = values.get(key, 0.0) + value


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
