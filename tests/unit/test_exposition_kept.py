"""A gzipped scrape reuses the compressed text of every family that did not change since the last
one: the body must still be, byte for byte once inflated, what a fresh writing gives, after any
kind of change; and a family that did not change must not be written again."""

import asyncio
import gzip
import random
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from exporter.metrics import Metrics
from exporter.metrics.deflate import Compressing, gzip_of
from exporter.metrics.labelled import (
    HISTOGRAMS_PER_PART,
    SCALARS_PER_PART,
    LabelledGauge,
    LabelledHistogram,
    exposition,
    writer,
)
from exporter.web.app import make_app


def steady(body: bytes) -> bytes:
    """Without the process collector's lines, which move between two readings."""
    return b"".join(line for line in body.splitlines(keepends=True) if not line.startswith(b"process_"))


POOL = ThreadPoolExecutor(max_workers=1)  # as the web app compresses: in a thread of its own


def gzipped(metrics: Metrics, openmetrics: bool = True, pool: Executor | None = None) -> bytes:
    return steady(gzip.decompress(exposition(metrics.registry, openmetrics=openmetrics, gzipped=True, pool=pool)))


def plain(metrics: Metrics, openmetrics: bool = True) -> bytes:
    return steady(exposition(metrics.registry, openmetrics=openmetrics))


def test_pieces_compressed_apart_join_into_one_gzip_member():
    rng = random.Random(3)
    for _ in range(30):
        texts = [rng.randbytes(rng.choice([0, 1, 40, 5_000, 70_000])) for _ in range(rng.randint(1, 5))]
        pieces = []
        for text in texts:
            piece = Compressing()
            for at in range(0, len(text), 999):
                piece.write(text[at : at + 999])
            piece.finish()
            pieces.append(piece.done())
        body = gzip_of(pieces)
        reader = zlib.decompressobj(wbits=31)  # one member: checks the CRC and length of the whole
        assert reader.decompress(body) == b"".join(texts)
        assert reader.eof and not reader.unused_data


def populated() -> Metrics:
    metrics = Metrics(clock=lambda: 1_000.0)
    for account in ("desk-a", "desk-b"):
        metrics.add_account(account, environment="mainnet", mode="guardian", desired_windows={"SPOT": 10})
        metrics.ping_gap.set_source(account, lambda: 990.0)
        metrics.ws_rtt.labels(account).observe(0.02)
        metrics.last_poll_success.labels(account).set(1_765_000_000.5)
    return metrics


CHANGES = {
    "a gauge set anew": lambda m: m.up.labels("desk-a").set(1),
    "a gauge set to -0.0 after 0.0": lambda m: m.drift.labels("desk-a", "SPOT").set(-0.0),
    "a gauge raised": lambda m: m.clock_skew.labels("desk-a").inc(0.5),
    "a gauge lowered": lambda m: m.clock_skew.labels("desk-a").dec(0.5),
    "a counter counted": lambda m: m.api_requests.labels("desk-a", "set_dcp").inc(),
    "an observation": lambda m: m.ws_rtt.labels("desk-b").observe(0.3),
    "a series added": lambda m: m.enabled.labels("desk-a", "SPOT").set(0),
    "a series removed": lambda m: m.ws_rtt.remove("desk-a"),
    "a family cleared": lambda m: m.ws_rtt.clear(),
    "an error, summed into the failures": lambda m: m.api_errors.labels("desk-b", "set_dcp", "10001").inc(),
    "an account added": lambda m: m.add_account("desk-c", environment="testnet", mode="observer"),
}


@pytest.mark.parametrize("pool", [None, POOL], ids=["here", "in a thread"])
@pytest.mark.parametrize("openmetrics", [True, False])
@pytest.mark.parametrize("change", CHANGES)
def test_a_change_after_a_gzipped_scrape_shows_in_the_next(change: str, openmetrics: bool, pool: Executor | None):
    metrics = populated()
    before = gzipped(metrics, openmetrics, pool)
    assert before == plain(metrics, openmetrics)
    CHANGES[change](metrics)
    after = gzipped(metrics, openmetrics, pool)
    assert after != before
    assert after == plain(metrics, openmetrics)
    assert after == steady(generate_latest(metrics.registry)) or openmetrics


def test_an_unchanged_family_is_not_written_again():
    metrics = populated()
    gzipped(metrics)
    kept = {name: family.pieces[True][1] for name, family in vars(metrics).items() if hasattr(family, "pieces")}
    metrics.up.labels("desk-a").set(1)  # a change of one family
    metrics.window.labels("desk-b", "SPOT").set(10)
    metrics.window.labels("desk-b", "SPOT").set(10)  # the same value again is no change
    gzipped(metrics)
    rewritten = {name for name, piece in kept.items() if getattr(metrics, name).pieces[True][1] is not piece}
    assert rewritten == {"up", "window"}
    gzipped(metrics)
    assert all(getattr(metrics, name).pieces[True][1] is not kept[name] for name in rewritten)


def test_the_writer_stops_after_each_part():
    registry = CollectorRegistry()
    gauge = LabelledGauge("g", "g", ["account"], registry=registry)
    histogram = LabelledHistogram("h", "h", ["account"], buckets=(1, 2), registry=registry)
    for i in range(3 * SCALARS_PER_PART + 1):
        gauge.labels(f"a{i}").set(i)
    for i in range(2 * HISTOGRAMS_PER_PART + 1):
        histogram.labels(f"a{i}").observe(i % 3)
    for gzip_it, pool in ((False, None), (True, None), (True, POOL)):
        gauge.pieces.clear()  # nothing kept from the round before
        histogram.pieces.clear()
        parts = writer(registry, openmetrics=True, gzipped=gzip_it, pool=pool)
        turns = waits = 0
        try:
            while True:
                step = next(parts)
                if step is None:
                    turns += 1
                else:
                    waits += 1
                    step.result()
        except StopIteration as done:
            body = b"".join(done.value)
        assert turns >= (1 + 4) + (1 + 3)  # each family's header, then each part
        assert waits == (3 if pool else 0)  # each family's piece, then the one of "# EOF", compressed in the thread
        assert (gzip.decompress(body) if gzip_it else body) == exposition(registry, openmetrics=True)


def test_a_histogram_by_one_label_writes_counts_of_a_million_and_more_as_go_does():
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LabelledHistogram("h", "h", ["account"], buckets=(1, 2), registry=ours_registry)
    theirs = Histogram("h", "h", ["account"], buckets=(1, 2), registry=theirs_registry)
    ours.labels("a").observe(0.5)
    theirs.labels("a").observe(0.5)
    ours.labels("b").counts = (1_500_000, 3, 0, 2e7)
    child = theirs.labels("b")
    child._buckets[0].inc(1_500_000)
    child._buckets[1].inc(3)
    child._sum.inc(2e7)
    assert exposition(ours_registry, openmetrics=False) == generate_latest(theirs_registry)


def test_the_handler_serves_the_gzipped_exposition_and_its_changes():
    metrics = populated()
    app = make_app(metrics, _State())
    (route,) = [
        r
        for r in app.router.routes()
        if r.method == "GET" and r.resource is not None and r.resource.canonical == "/metrics"
    ]
    headers = {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"}

    async def scrape() -> tuple[bytes, bytes]:
        """The body served, and what a fresh writing gives meanwhile (the loop's task count in both)."""
        response = await route.handler(make_mocked_request("GET", "/metrics", headers=headers, app=app))
        assert response.headers["Content-Encoding"] == "gzip"
        return steady(gzip.decompress(await response.body.as_bytes())), plain(metrics)

    first, expected = asyncio.run(scrape())
    assert first == expected
    metrics.ws_rtt.labels("desk-a").observe(7.0)
    second, expected = asyncio.run(scrape())
    assert second != first
    assert second == expected


class _State:
    ready = True

    def account_names(self) -> list[str]:
        return ["desk-a", "desk-b"]
