"""Labelled gauges, counters and histograms that stay small with a thousand accounts.

prometheus_client gives every label set a child metric object, and every value in it a
lock of its own (a histogram: one per bucket), about 40 KB per watched account here. These
keep the same API (``labels(...).set/inc/observe``, ``remove``, ``clear``, ``collect``) and
the same exposition, with a child that is one slotted object holding plain numbers.

No locks: values change only on the event loop, and each change is a single attribute
store (a histogram swaps in a new tuple of counts and sum), so a scrape in a worker thread
always reads whole values. ``collect`` copies the values and builds Sample objects only for
a reader that asks for them; :func:`text_exposition` writes the text format straight from
the copy, the same bytes ``generate_latest`` makes, about four times faster.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

INF = math.inf
EOF = b"# EOF\n"


@functools.lru_cache(maxsize=16_384)
def _pair(name: str, value: str) -> str:
    """``name="value"`` as the text format writes it; remembered, as the same account names recur in every family."""
    escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return f'{name}="{escaped}"'


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
    """``counts``: the observations per bucket (whole numbers, not cumulative), then their sum, in one tuple."""

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


Row = tuple[tuple[str, ...], float | tuple[float, ...]]  # label values, then a value or a histogram's counts


class _Family(Collector, Generic[C]):
    """What the three kinds share: label handling, registration and the text header."""

    kind = ""
    suffix = ""  # of the value sample: counters end in _total
    _bounds: tuple[float, ...] = ()  # a histogram's bucket bounds

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

    def known(self, key: tuple[str, ...]) -> C:
        """``labels(*key)`` for a key the registry makes itself (one string per label, in order):
        a series known in advance, created for each added account without the checks and
        conversions a caller's values need (a third of ``add_account``'s time)."""
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def forget(self, key: tuple[str, ...]) -> None:
        """``remove(*key)`` for a key made as :meth:`known` takes it (a poll drops series this way)."""
        self._children.pop(key, None)

    def remove(self, *labelvalues: object) -> None:
        """Drop one series; nothing happens when it does not exist (as in prometheus_client)."""
        self._children.pop(self._key(labelvalues, {}), None)

    def clear(self) -> None:
        self._children = {}

    def describe(self) -> Iterable[Metric]:
        yield Metric(self._name, self._documentation, self.kind)

    def collect(self) -> Iterable[Metric]:
        yield Read(self, self.rows())

    def rows(self) -> list[Row]:
        """Every series' label values and value (a histogram's: its counts and sum), as of now."""
        raise NotImplementedError

    def samples(self, rows: list[Row]) -> list[Sample]:
        raise NotImplementedError

    def text(self, rows: list[Row], openmetrics: bool) -> str:
        raise NotImplementedError

    @property
    def value_name(self) -> str:
        """The name of a gauge's or counter's sample (a counter's ends in ``_total``)."""
        return self._name + self.suffix

    def _pairs(self, key: tuple[str, ...]) -> list[str]:
        names = self._labelnames
        return [_pair(names[i], key[i]) for i in self._sorted]

    def _header(self, openmetrics: bool) -> str:
        """OpenMetrics names the family (``c``), the text format its sample (``c_total``), and escapes quotes too."""
        name = self._name if openmetrics else self.value_name
        help_text = self._documentation.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            help_text = help_text.replace('"', r"\"")
        return f"# HELP {name} {help_text}\n# TYPE {name} {self.kind}\n"


class Read(Metric):
    """One family as read at collect time; its Sample objects are built only when asked for.

    A reader in this package can take the rows as they are (``labelnames``, ``rows``, and a
    histogram's ``bounds``) and skip building a Sample per line: the status board does."""

    def __init__(self, source: _Family, rows: list[Row]) -> None:
        self._source, self._rows = source, rows
        self._built: list[Sample] | None = None
        super().__init__(source._name, source._documentation, source.kind)

    @property
    def labelnames(self) -> tuple[str, ...]:
        return self._source._labelnames

    @property
    def rows(self) -> list[Row]:
        """Label values in ``labelnames`` order, then the value (a histogram's: per-bucket counts, then the sum)."""
        return self._rows

    @property
    def value_name(self) -> str:
        """The name of a gauge's or counter's sample (a counter's ends in ``_total``)."""
        return self._source.value_name

    @property
    def bounds(self) -> tuple[float, ...]:
        """A histogram's bucket bounds, ``+Inf`` last (empty for a gauge or counter)."""
        return self._source._bounds

    @property
    def samples(self) -> list[Sample]:
        if self._built is None:
            self._built = self._source.samples(self._rows)
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value or None  # Metric.__init__ sets [], which means "not built yet"

    def text(self, openmetrics: bool) -> str:
        return self._source.text(self._rows, openmetrics)


class _Scalar(_Family[C]):
    def rows(self) -> list[Row]:
        children = self._children.copy()  # one step: the loop may add a series meanwhile
        return [(key, child.value) for key, child in children.items()]  # type: ignore[union-attr]  # _Value children

    def samples(self, rows: list[Row]) -> list[Sample]:
        name, names = self.value_name, self._labelnames
        if len(names) == 1:
            label = names[0]
            return [_sample(name, {label: value_of_label}, value) for (value_of_label,), value in rows]  # type: ignore[arg-type]
        return [_sample(name, dict(zip(names, key, strict=False)), value) for key, value in rows]  # type: ignore[arg-type]

    def text(self, rows: list[Row], openmetrics: bool) -> str:
        name = self.value_name
        lines = [self._header(openmetrics)]
        values = _value_texts([value for _, value in rows])  # type: ignore[misc]
        if len(self._labelnames) == 1:  # most families: by account alone
            label = self._labelnames[0]
            for ((value_of_label,), _), value in zip(rows, values, strict=True):
                lines.append(f"{name}{{{_pair(label, value_of_label)}}} {value}\n")
            return "".join(lines)
        if len(self._labelnames) == 2:  # account and one more (product, endpoint, reason...): no list per line
            (first, second), names = self._sorted, self._labelnames
            a, b = names[first], names[second]
            for (key, _), value in zip(rows, values, strict=True):
                lines.append(f"{name}{{{_pair(a, key[first])},{_pair(b, key[second])}}} {value}\n")
            return "".join(lines)
        for (key, _), value in zip(rows, values, strict=True):
            lines.append(f"{name}{{{','.join(self._pairs(key))}}} {value}\n")
        return "".join(lines)


class Readout(_Scalar[_Value]):
    """A gauge or counter family whose values a collector works out at scrape time (it holds no series)."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.kind, self.suffix = kind, "_total" if kind == "counter" else ""
        super().__init__(name, documentation, labelnames)

    def read(self, rows: list[Row]) -> Metric:
        return Read(self, rows)


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
        self._le_at = sorted((*self._labelnames, "le")).index("le")  # le's place among the sorted names
        # One child's lines in one format call: {0} bucket head, {1} tail, {2} count head, {3} sum line, then counts.
        self._template = "".join(f'{{0}}le="{le}"{{1}}{{{i + 4}}}.0\n' for i, le in enumerate(self._les))
        self._template += f"{{2}}{{{len(self._les) + 3}}}.0\n{{3}}\n"

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self._bounds)

    def rows(self) -> list[Row]:
        children = self._children.copy()  # one step: the loop may add a series meanwhile
        return [(key, child.counts) for key, child in children.items()]

    def samples(self, rows: list[Row]) -> list[Sample]:
        names, out = self._labelnames, []
        bucket, count, total = self._name + "_bucket", self._name + "_count", self._name + "_sum"
        for key, counts in rows:
            labels = dict(zip(names, key, strict=True))
            cumulative = 0.0
            for le, n in zip(self._les, counts[:-1], strict=True):  # type: ignore[index]
                cumulative += n
                out.append(_sample(bucket, {**labels, "le": le}, cumulative))
            out.append(_sample(count, labels, cumulative))
            out.append(_sample(total, labels, counts[-1]))  # type: ignore[index]
        return out

    def text(self, rows: list[Row], openmetrics: bool) -> str:
        name, lines = self._name, [self._header(openmetrics)]
        for key, counts in rows:
            pairs = self._pairs(key)
            before, after = ",".join(pairs[: self._le_at]), ",".join(pairs[self._le_at :])
            head = f"{name}_bucket{{{before}," if before else f"{name}_bucket{{"
            tail = f",{after}}} " if after else "} "
            plain = ",".join(pairs)
            count_head, total = f"{name}_count{{{plain}}} ", f"{name}_sum{{{plain}}} {_value_text(counts[-1])}"  # type: ignore[index]
            cumulative = list(itertools.accumulate(counts[:-1]))  # type: ignore[index]
            if cumulative[-1] < 1_000_000:  # the template writes every count as "<n>.0", as Go does below a million
                lines.append(self._template.format(head, tail, count_head, total, *cumulative))
                continue
            lines.extend(
                f'{head}le="{le}"{tail}{floatToGoString(c)}\n' for le, c in zip(self._les, cumulative, strict=True)
            )
            lines.append(f"{count_head}{floatToGoString(cumulative[-1])}\n{total}\n")
        return "".join(lines)


_NOT_SET = (None,) * (len(Sample._fields) - 3)  # timestamp, exemplar, native histogram: never set here


def _sample(name: str, labels: dict[str, str], value: float) -> Sample:
    """``Sample(name, labels, value)`` at a third of the cost: the status board reads tens of thousands each time."""
    return tuple.__new__(Sample, (name, labels, value, *_NOT_SET))


def _value_texts(values: list[float]) -> list[str]:
    """``floatToGoString`` of each; Python's repr is Go's below a million (above, Go writes an
    exponent). One comprehension, not a call per value: a family has thousands."""
    return [repr(v) if -INF < v < 1_000_000 else floatToGoString(v) for v in values]


def _value_text(value: float) -> str:
    return _value_texts([value])[0]


class _One(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterable[Metric]:
        yield self._family


def text_exposition(registry: Collector) -> bytes:
    """``generate_latest(registry)``, byte for byte, with the labelled families written directly."""
    parts = []
    for family in registry.collect():
        parts.append(family.text(False).encode() if isinstance(family, Read) else generate_latest(_One(family)))
    return b"".join(parts)


def openmetrics_exposition(registry: Collector) -> bytes:
    """OpenMetrics 1.0.0 (what Prometheus asks for first), byte for byte, written the same way."""
    parts = []
    for family in registry.collect():
        if isinstance(family, Read):
            parts.append(family.text(True).encode())
        else:
            parts.append(generate_openmetrics(_One(family)).removesuffix(EOF))
    return b"".join(parts) + EOF


def direct(encoder: Callable[[Collector], bytes]) -> Callable[[Collector], bytes]:
    """The direct writer for the exposition ``choose_encoder`` picked, when there is one; else ``encoder``.

    Metric and label names here are all legacy-valid, so every name escaping writes the same bytes.
    """
    if encoder is generate_latest:
        return text_exposition
    if (
        isinstance(encoder, functools.partial)
        and encoder.func is generate_openmetrics
        and encoder.keywords.get("version") == "1.0.0"
        and encoder.keywords.get("escaping") in (UNDERSCORES, ALLOWUTF8)
    ):
        return openmetrics_exposition
    return encoder
