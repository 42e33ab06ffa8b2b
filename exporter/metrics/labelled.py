"""Labelled gauges, counters and histograms that stay small with a thousand accounts.

prometheus_client gives every label set a child metric object, and every value in it a
lock of its own (a histogram: one per bucket), about 40 KB per watched account here. These
keep the same API (``labels(...).set/inc/observe``, ``remove``, ``clear``, ``collect``) and
the same exposition, with no object per series at all: a family holds one dict from label
values to a float (a histogram's: a tuple of counts and sum), and ``labels`` hands out a
small handle onto it.

No locks: values change only on the event loop, and each change is a single dict store (a
histogram puts a new tuple in place), so a reader in a worker thread (the status board)
always reads whole values. ``collect`` copies the values and builds Sample objects only for
a reader that asks for them; :func:`writer` writes the text formats straight from the copy,
the same bytes ``generate_latest`` makes, and keeps each family's compressed text for the
next gzipped scrape while the family does not change.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .deflate import Compressing, Piece, gzip_parts

INF = math.inf
EOF = b"# EOF\n"


@functools.lru_cache(maxsize=16_384)
def _pair(name: str, value: str) -> str:
    """``name="value"`` as the text format writes it; remembered, as the same account names recur in every family."""
    escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return f'{name}="{escaped}"'


@functools.lru_cache(maxsize=16_384)
def _quoted(value: str) -> str:
    """``"value"`` as the text format writes a label value: the other half of :func:`_pair`."""
    escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return f'"{escaped}"'


SCALARS_PER_PART = 1_000  # about 0.5 ms of writing each
HISTOGRAMS_PER_PART = 150  # 15 lines each


class _Series:
    """One series of a family, as ``labels(...)`` gives it: the family and the label values.

    The value itself is held in the family's dict (``_values``: label values to a float, or to
    a histogram's counts), not in an object per series: at 1,000 accounts that is 60,000
    objects fewer (48 bytes each). A handle is made for each ``labels`` call and is cheap to
    drop. After ``remove`` (or ``clear``) a handle still held records nothing, as a removed
    child of prometheus_client's is exported no more; ``labels`` again starts the series at 0.

    Every change counts in the family's ``changes``, so that a scrape knows which families
    are as they were at the last one (:func:`writer`). Values change only on the event loop.
    """

    __slots__ = ("_family", "_key")

    def __init__(self, family: _Family[Any], key: tuple[str, ...]) -> None:
        self._family, self._key = family, key


class _ScalarSeries(_Series):
    __slots__ = ()
    _family: _Scalar[Any]

    @property
    def value(self) -> float:
        return self._family._values.get(self._key, 0.0)

    def _add(self, amount: float) -> None:
        family = self._family
        values, key = family._values, self._key
        old = values.get(key)
        if old is not None:
            values[key] = old + amount
            family.changes += 1


class _GaugeSeries(_ScalarSeries):
    __slots__ = ()

    def set(self, value: float) -> None:
        family = self._family
        if self._key in family._values:  # else removed: a handle still held records nothing
            family.put(self._key, value)

    def inc(self, amount: float = 1) -> None:
        self._add(amount)

    def dec(self, amount: float = 1) -> None:
        self._add(-amount)


class _CounterSeries(_ScalarSeries):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._add(amount)


class _HistogramSeries(_Series):
    """``counts``: the observations per bucket (whole numbers, not cumulative), then their sum, in
    one tuple; each observation puts a new tuple in place, so a reader in another thread always
    reads whole counts."""

    __slots__ = ()

    @property
    def counts(self) -> tuple[float, ...]:
        return self._family._values.get(self._key, self._family._zero)

    @counts.setter
    def counts(self, counts: tuple[float, ...]) -> None:
        family = self._family
        if self._key in family._values:
            family._values[self._key] = counts
            family.changes += 1

    def observe(self, amount: float) -> None:
        family = self._family
        values, key = family._values, self._key
        old = values.get(key)
        if old is None:  # removed
            return
        counts = list(old)
        counts[bisect.bisect_left(family._bounds, amount)] += 1  # a bucket holds values <= its bound
        counts[-1] += amount
        values[key] = tuple(counts)
        family.changes += 1


C = TypeVar("C", bound=_Series)


Row = tuple[tuple[str, ...], float | tuple[float, ...]]  # label values, then a value or a histogram's counts


class Kept:
    """A collector whose text a gzipped scrape keeps compressed while ``state()`` stays the same.

    ``rows()`` reads the family's series now, ``text_parts`` writes them, and ``pieces`` holds
    the compressed text of each format with the state it was written at. Every labelled family
    is one; so is a collector whose rows are worked out from such families alone
    (``bybit_dcp_api_failures_total``). A collector that reads the clock (the ping gap) is not."""

    pieces: dict[bool, tuple[object, Piece]]

    def state(self) -> object:
        raise NotImplementedError

    def rows(self) -> list[Row]:
        raise NotImplementedError

    def text_parts(self, rows: list[Row], openmetrics: bool) -> Iterator[str]:
        raise NotImplementedError


class _Family(Collector, Kept, Generic[C]):
    """What the three kinds share: label handling, registration and the text header.

    ``changes`` counts every change of the family (a value, a series added or removed); while it
    stays the same, so does the family's text, and :func:`exposition` reuses the compressed
    text it kept (``pieces``, one per format) instead of writing it again."""

    kind = ""
    suffix = ""  # of the value sample: counters end in _total
    _bounds: tuple[float, ...] = ()  # a histogram's bucket bounds
    _series: type = _Series
    _zero: float | tuple[float, ...] = 0.0  # a new series' value

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
        self._values: dict[tuple[str, ...], Any] = {}  # label values to the value (see _Series)
        self.changes = 0
        self.pieces: dict[bool, tuple[object, Piece]] = {}  # by openmetrics: (changes then, the compressed text)
        if registry is not None:
            registry.register(self)

    def state(self) -> object:
        """What is the same as long as the family's text is (see :func:`exposition`)."""
        return self.changes

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

    def labels(self, *labelvalues: object, **labelkwargs: object) -> C:
        return self.known(self._key(labelvalues, labelkwargs))

    def known(self, key: tuple[str, ...]) -> C:
        """``labels(*key)`` for a key the registry makes itself (one string per label, in order):
        a series known in advance, created for each added account without the checks and
        conversions a caller's values need (a third of ``add_account``'s time)."""
        if key not in self._values:
            self._values[key] = self._zero
            self.changes += 1
        return self._series(self, key)

    def forget(self, key: tuple[str, ...]) -> None:
        """``remove(*key)`` for a key made as :meth:`known` takes it (a poll drops series this way)."""
        if self._values.pop(key, None) is not None:
            self.changes += 1

    def remove(self, *labelvalues: object) -> None:
        """Drop one series; nothing happens when it does not exist (as in prometheus_client)."""
        if self._values.pop(self._key(labelvalues, {}), None) is not None:
            self.changes += 1

    def clear(self) -> None:
        self._values = {}
        self.changes += 1

    def rows(self) -> list[Row]:
        """Every series' label values and value (a histogram's: its counts and sum), as of now."""
        return list(self._values.items())  # one step: the loop may add a series meanwhile

    def describe(self) -> Iterable[Metric]:
        yield Metric(self._name, self._documentation, self.kind)

    def collect(self) -> Iterable[Metric]:
        yield Read(self, self.rows())

    def samples(self, rows: list[Row]) -> list[Sample]:
        raise NotImplementedError

    def text(self, rows: list[Row], openmetrics: bool) -> str:
        return "".join(self.text_parts(rows, openmetrics))

    def text_parts(self, rows: list[Row], openmetrics: bool) -> Iterator[str]:
        """The family's text in parts of a few hundred series, the header first: a scrape on
        the event loop lets the loop run between two parts (:func:`exposition_in_turns`)."""
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

    def text_parts(self, openmetrics: bool) -> Iterator[str]:
        return self._source.text_parts(self._rows, openmetrics)


class _Scalar(_Family[C]):
    def put(self, key: tuple[str, ...], value: float) -> None:
        """``known(key).set(value)`` in one call, without the handle: the gauges a poll writes.

        The same value again (most of a poll's) is no change; 0.0 and -0.0 are equal but
        written apart."""
        values, value = self._values, float(value)
        old = values.get(key)
        if old is not None and value == old and (value or math.copysign(1.0, value) == math.copysign(1.0, old)):
            return
        values[key] = value
        self.changes += 1

    def samples(self, rows: list[Row]) -> list[Sample]:
        name, names = self.value_name, self._labelnames
        if len(names) == 1:
            label = names[0]
            return [_sample(name, {label: value_of_label}, value) for (value_of_label,), value in rows]  # type: ignore[arg-type]
        return [_sample(name, dict(zip(names, key, strict=False)), value) for key, value in rows]  # type: ignore[arg-type]

    def text_parts(self, rows: list[Row], openmetrics: bool) -> Iterator[str]:
        name, names = self.value_name, self._labelnames
        yield self._header(openmetrics)
        for start in range(0, len(rows), SCALARS_PER_PART):
            batch = rows[start : start + SCALARS_PER_PART]
            values = _value_texts([value for _, value in batch])  # type: ignore[misc]
            if len(names) == 1:  # most families: by account alone
                head = f"{name}{{{names[0]}="
                yield "".join(
                    [f"{head}{_quoted(v)}}} {value}\n" for ((v,), _), value in zip(batch, values, strict=True)]
                )
            elif len(names) == 2:  # account and one more (product, endpoint, reason...): no list per line
                (first, second) = self._sorted
                head, middle = f"{name}{{{names[first]}=", f",{names[second]}="
                yield "".join(
                    [
                        f"{head}{_quoted(key[first])}{middle}{_quoted(key[second])}}} {value}\n"
                        for (key, _), value in zip(batch, values, strict=True)
                    ]
                )
            else:
                yield "".join(
                    [
                        f"{name}{{{','.join(self._pairs(key))}}} {value}\n"
                        for (key, _), value in zip(batch, values, strict=True)
                    ]
                )


class Readout(_Scalar[_GaugeSeries]):
    """A gauge or counter family whose values a collector works out at scrape time (it holds no series)."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.kind, self.suffix = kind, "_total" if kind == "counter" else ""
        super().__init__(name, documentation, labelnames)

    def read(self, rows: list[Row]) -> Metric:
        return Read(self, rows)


class LabelledGauge(_Scalar[_GaugeSeries]):
    kind = "gauge"
    _series = _GaugeSeries


class LabelledCounter(_Scalar[_CounterSeries]):
    kind = "counter"
    suffix = "_total"
    _series = _CounterSeries


class LabelledHistogram(_Family[_HistogramSeries]):
    kind = "histogram"
    _series = _HistogramSeries

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
        self._zero = (0,) * len(self._bounds) + (0.0,)  # one tuple all new series share
        self._les = [floatToGoString(b) for b in self._bounds]
        super().__init__(name, documentation, labelnames, registry=registry)
        self._le_at = sorted((*self._labelnames, "le")).index("le")  # le's place among the sorted names
        # One child's lines in one format call: {0} the labels before le (and a comma), {1} those after
        # (a comma first), {2} all of them, {3} the sum, then the cumulative counts.
        self._template = "".join(
            f'{name}_bucket{{{{{{0}}le="{le}"{{1}}}}}} {{{i + 4}}}.0\n' for i, le in enumerate(self._les)
        )
        self._template += f"{name}_count{{{{{{2}}}}}} {{{len(self._les) + 3}}}.0\n{name}_sum{{{{{{2}}}}}} {{3}}\n"
        # The same for a family by one label that sorts before le, in a %-format: a third faster than
        # format's, which these two families (RTT and heartbeat gap: 28 lines an account) notice.
        self._by_one = "".join(f'{name}_bucket{{%s,le="{le}"}} %d.0\n' for le in self._les)
        self._by_one += f"{name}_count{{%s}} %d.0\n{name}_sum{{%s}} %s\n"

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

    def text_parts(self, rows: list[Row], openmetrics: bool) -> Iterator[str]:
        name, template, les, le_at = self._name, self._template, self._les, self._le_at
        one = self._labelnames[0] if len(self._labelnames) == 1 and le_at == 1 else None
        by_one, width = self._by_one, 2 * len(les) + 4
        yield self._header(openmetrics)
        for start in range(0, len(rows), HISTOGRAMS_PER_PART):
            lines = []
            for key, counts in rows[start : start + HISTOGRAMS_PER_PART]:
                cumulative = list(itertools.accumulate(counts[:-1]))  # type: ignore[index]
                total = counts[-1]  # type: ignore[index]
                total = repr(total) if -INF < total < 1_000_000 else floatToGoString(total)  # as _value_texts
                if one is not None:  # by account alone (RTT, heartbeat gap): le comes after it
                    plain = _pair(one, key[0])
                    if (
                        cumulative[-1] < 1_000_000
                    ):  # the templates write every count as "<n>.0", as Go does below a million
                        # The label pair in every other place, the counts, the total count and the sum in between.
                        cumulative.append(cumulative[-1])
                        cumulative.append(total)
                        values = [plain] * width
                        values[1::2] = cumulative
                        lines.append(by_one % tuple(values))
                        continue
                    before, after = plain + ",", ""
                else:
                    pairs = self._pairs(key)
                    plain = ",".join(pairs)
                    before = ",".join(pairs[:le_at]) + "," if le_at else ""
                    after = "," + ",".join(pairs[le_at:]) if le_at < len(pairs) else ""
                    if cumulative[-1] < 1_000_000:
                        lines.append(template.format(before, after, plain, total, *cumulative))
                        continue
                lines.extend(
                    f'{name}_bucket{{{before}le="{le}"{after}}} {floatToGoString(c)}\n'
                    for le, c in zip(les, cumulative, strict=True)
                )
                lines.append(
                    f"{name}_count{{{plain}}} {floatToGoString(cumulative[-1])}\n{name}_sum{{{plain}}} {total}\n"
                )
            yield "".join(lines)


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


def _collectors(registry: Collector) -> list[Collector]:
    """The registry's collectors in the order ``CollectorRegistry.collect`` walks them (a copy
    taken under its lock, as it takes one), so that a kept family's rows need not be read at all."""
    if isinstance(registry, CollectorRegistry) and getattr(registry, "_target_info", None) is None:
        with registry._lock:
            return list(registry._collector_to_names)
    return [registry]


class _Body:
    """What a scrape has written so far: plain bytes, or compressed pieces (kept or being compressed)."""

    def __init__(self, gzipped: bool, pool: Executor | None) -> None:
        self._gzipped, self._pool = gzipped, pool
        self._plain: list[bytes] = []
        self._pieces: list[Piece | Compressing] = []
        self._loose: Compressing | None = None  # the text of collectors that are not kept, since the last piece

    def write(self, plain: bytes) -> None:
        if not self._gzipped:
            self._plain.append(plain)
            return
        if self._loose is None:
            self._loose = Compressing(self._pool)
        self._loose.write(plain)

    def start(self) -> Compressing:
        """A new piece, next in the body."""
        piece = Compressing(self._pool)
        self.add(piece)
        return piece

    def add(self, piece: Piece | Compressing) -> None:
        self._end_loose()
        self._pieces.append(piece)

    def _end_loose(self) -> None:
        if self._loose is not None:
            self._loose.finish()
            self._pieces.append(self._loose)
            self._loose = None

    def waits(self) -> list[Future[Piece]]:
        """What is still being compressed, once all is written (nothing without a pool)."""
        self._end_loose()
        return [p.last for p in self._pieces if isinstance(p, Compressing) and p.last is not None]

    def result(self) -> list[bytes]:
        """The body as byte strings to send one after the other (joined, they are the body)."""
        if not self._gzipped:
            return self._plain
        return gzip_parts([p.done() if isinstance(p, Compressing) else p for p in self._pieces])


Step = Future[Piece] | None  # what the writer yields: None for a turn, or what it waits for


def writer(
    registry: Collector, *, openmetrics: bool, gzipped: bool = False, pool: Executor | None = None
) -> Generator[Step, None, list[bytes]]:
    """The exposition of ``registry``, written a part at a time: it yields after each part
    (a few hundred series at most) and returns the body, gzipped when asked, as the byte
    strings it was written in (joined, they are the body: 7 MB of plain text at 1,000 accounts
    need not be copied into one string to be sent).

    Byte for byte what prometheus_client's ``generate_latest`` (or its OpenMetrics one) writes,
    and its gzip. Gzipped, a kept family whose state is what it was at the last scrape is not
    read, written nor compressed again: its piece from then is joined in (:mod:`.deflate`).
    Plain bodies are written whole every time: keeping them would hold the whole exposition
    (7 MB at 1,000 accounts) where the compressed pieces hold a fifteenth of it.

    With a ``pool`` (one worker thread) the compressing is done there while the next family is
    written; at the end the writer yields the futures of what is still being compressed, for
    its driver to wait for (``result()``, or ``await asyncio.wrap_future``) before the next step.
    """
    body = _Body(gzipped, pool)
    fresh: list[tuple[Kept, object, Compressing]] = []
    for collector in _collectors(registry):
        if isinstance(collector, Kept):
            state = collector.state()  # before the rows: a change while they are read shows next time
            if gzipped:
                kept = collector.pieces.get(openmetrics)
                if kept is not None and kept[0] == state:
                    body.add(kept[1])
                    continue
            rows = collector.rows()
            piece = body.start() if gzipped else None
            for part in collector.text_parts(rows, openmetrics):
                if piece is None:
                    body.write(part.encode())
                else:
                    piece.write(part.encode())
                yield None
            if piece is not None:
                piece.finish()
                fresh.append((collector, state, piece))
            continue
        for family in collector.collect():
            if isinstance(family, Read):
                for part in family.text_parts(openmetrics):
                    body.write(part.encode())
                    yield None
            elif openmetrics:
                body.write(generate_openmetrics(_One(family)).removesuffix(EOF))
            else:
                body.write(generate_latest(_One(family)))
        yield None
    if openmetrics:
        body.write(EOF)
    yield from body.waits()
    for kept_collector, state, piece in fresh:
        kept_collector.pieces[openmetrics] = (state, piece.done())
    return body.result()


def exposition(registry: Collector, *, openmetrics: bool, gzipped: bool = False, pool: Executor | None = None) -> bytes:
    """:func:`writer`'s body, written in one go."""
    parts = writer(registry, openmetrics=openmetrics, gzipped=gzipped, pool=pool)
    while True:
        try:
            step = next(parts)
        except StopIteration as done:
            return b"".join(done.value)
        if step is not None:
            step.result()


def text_exposition(registry: Collector) -> bytes:
    """``generate_latest(registry)``, byte for byte, with the labelled families written directly."""
    return exposition(registry, openmetrics=False)


def openmetrics_exposition(registry: Collector) -> bytes:
    """OpenMetrics 1.0.0 (what Prometheus asks for first), byte for byte, written the same way."""
    return exposition(registry, openmetrics=True)


def written_as(encoder: Callable[[Collector], bytes]) -> bool | None:
    """Whether the exposition ``choose_encoder`` picked is OpenMetrics 1.0.0 (True) or the text
    format (False), both of which :func:`writer` writes; None for any other (prometheus_client's own)."""
    if encoder is generate_latest:
        return False
    if (
        isinstance(encoder, functools.partial)
        and encoder.func is generate_openmetrics
        and encoder.keywords.get("version") == "1.0.0"
        and encoder.keywords.get("escaping") in (UNDERSCORES, ALLOWUTF8)
    ):
        return True
    return None


def direct(encoder: Callable[[Collector], bytes]) -> Callable[[Collector], bytes]:
    """The direct writer for the exposition ``choose_encoder`` picked, when there is one; else ``encoder``.

    Metric and label names here are all legacy-valid, so every name escaping writes the same bytes.
    """
    openmetrics = written_as(encoder)
    if openmetrics is None:
        return encoder
    return openmetrics_exposition if openmetrics else text_exposition
