"""Labelled gauges, counters and histograms that stay small with a thousand accounts.

prometheus_client gives every label set a child metric object, and every value in it a
lock of its own (a histogram: one per bucket), about 40 KB per watched account here. These
keep the same API (``labels(...).set/inc/observe``, ``remove``, ``clear``, ``collect``) and
the same exposition, with a child that is one slotted object holding plain numbers.

No locks: values change only on the event loop, and each change is a single attribute
store (a histogram swaps in a new tuple of counts and sum), so a scrape in a worker thread
always reads whole values. :meth:`render_text` writes the text exposition directly, the same
bytes ``generate_latest`` makes from :meth:`collect`, without a Sample object per line.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

INF = math.inf


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class _GaugeChild(_Value):
    __slots__ = ()

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


class _CounterChild(_Value):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class _HistogramChild:
    """``counts``: the observations per bucket (not cumulative), then their sum, in one tuple."""

    __slots__ = ("_bounds", "counts")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts: tuple[float, ...] = (0,) * len(bounds) + (0.0,)

    def observe(self, amount: float) -> None:
        counts = list(self.counts)
        counts[bisect.bisect_left(self._bounds, amount)] += 1  # a bucket holds values <= its bound
        counts[-1] += amount
        self.counts = tuple(counts)


C = TypeVar("C", bound=_Value | _HistogramChild)


class _Family(Collector, Generic[C]):
    """What the three kinds share: label handling, registration and the text header."""

    kind = ""
    suffix = ""  # of the value sample in the text format: counters end in _total

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry | None = None
    ) -> None:
        if not labelnames:
            raise ValueError(f"{name}: a labelled metric needs label names")
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        # The text format sorts labels by name; the order a child's values go in.
        self._sorted = sorted(range(len(self._labelnames)), key=lambda i: self._labelnames[i])
        self._children: dict[tuple[str, ...], C] = {}
        if registry is not None:
            registry.register(self)

    def _key(self, values: tuple[object, ...], kwargs: dict[str, object]) -> tuple[str, ...]:
        if values and kwargs:
            raise ValueError("Can't pass both *args and **kwargs")
        if kwargs:
            if sorted(kwargs) != sorted(self._labelnames):
                raise ValueError("Incorrect label names")
            return tuple(str(kwargs[n]) for n in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError("Incorrect label count")
        return tuple(str(v) for v in values)

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *labelvalues: object, **labelkwargs: object) -> C:
        key = self._key(labelvalues, labelkwargs)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def remove(self, *labelvalues: object) -> None:
        """Drop one series; nothing happens when it does not exist (as in prometheus_client)."""
        self._children.pop(self._key(labelvalues, {}), None)

    def clear(self) -> None:
        self._children = {}

    def describe(self) -> Iterable[Metric]:
        yield Metric(self._name, self._documentation, self.kind)

    def _snapshot(self) -> list[tuple[tuple[str, ...], C]]:
        return list(self._children.copy().items())  # dict.copy is one step: the loop may add meanwhile

    def _label_text(self, key: tuple[str, ...]) -> str:
        return ",".join(f'{self._labelnames[i]}="{_escape(key[i])}"' for i in self._sorted)

    def _header(self) -> str:
        name = self._name + self.suffix
        help_text = self._documentation.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {help_text}\n# TYPE {name} {self.kind}\n"


S = TypeVar("S", bound=_Value)


class _Scalar(_Family[S]):
    def collect(self) -> Iterable[Metric]:
        family = Metric(self._name, self._documentation, self.kind)
        name = self._name + self.suffix
        names = self._labelnames
        for key, child in self._snapshot():
            family.samples.append(Sample(name, dict(zip(names, key, strict=True)), child.value))
        yield family

    def render_text(self) -> str:
        name = self._name + self.suffix
        lines = [self._header()]
        for key, child in self._snapshot():
            lines.append(f"{name}{{{self._label_text(key)}}} {floatToGoString(child.value)}\n")
        return "".join(lines)


class LabelledGauge(_Scalar[_GaugeChild]):
    kind = "gauge"

    def _new_child(self) -> _GaugeChild:
        return _GaugeChild()


class LabelledCounter(_Scalar[_CounterChild]):
    kind = "counter"
    suffix = "_total"

    def _new_child(self) -> _CounterChild:
        return _CounterChild()


class LabelledHistogram(_Family[_HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        self._bounds = bounds if bounds[-1] == INF else (*bounds, INF)
        self._les = [floatToGoString(b) for b in self._bounds]
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self._bounds)

    def collect(self) -> Iterable[Metric]:
        family = Metric(self._name, self._documentation, self.kind)
        names = self._labelnames
        bucket, count, total = self._name + "_bucket", self._name + "_count", self._name + "_sum"
        for key, child in self._snapshot():
            labels = dict(zip(names, key, strict=True))
            counts = child.counts
            cumulative = 0.0
            for le, n in zip(self._les, counts[:-1], strict=True):
                cumulative += n
                family.samples.append(Sample(bucket, {**labels, "le": le}, cumulative))
            family.samples.append(Sample(count, labels, cumulative))
            family.samples.append(Sample(total, labels, counts[-1]))
        yield family

    def render_text(self) -> str:
        lines = [self._header()]
        name = self._name
        with_le = sorted((*self._labelnames, "le"))
        at = with_le.index("le")  # where le goes among the sorted label names
        for key, child in self._snapshot():
            pairs = [f'{self._labelnames[i]}="{_escape(key[i])}"' for i in self._sorted]
            before, after = ",".join(pairs[:at]), ",".join(pairs[at:])
            head = f"{name}_bucket{{{before}," if before else f"{name}_bucket{{"
            tail = f",{after}}} " if after else "} "
            counts = child.counts
            cumulative = 0.0
            for le, n in zip(self._les, counts[:-1], strict=True):
                cumulative += n
                lines.append(f'{head}le="{le}"{tail}{floatToGoString(cumulative)}\n')
            plain = ",".join(pairs)
            lines.append(f"{name}_count{{{plain}}} {floatToGoString(cumulative)}\n")
            lines.append(f"{name}_sum{{{plain}}} {floatToGoString(counts[-1])}\n")
        return "".join(lines)
