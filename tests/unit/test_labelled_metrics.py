"""The compact labelled metrics are prometheus_client's, series for series: the same operations
on both give the same exposition, through ``collect`` (status board, ``get_sample_value``,
OpenMetrics) and through the direct text rendering alike."""

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.metrics import RTT_BUCKETS, Metrics
from exporter.metrics.labelled import (
    LabelledCounter,
    LabelledGauge,
    LabelledHistogram,
    direct,
    openmetrics_exposition,
    text_exposition,
)

LABELS = ["account", "endpoint"]
# Odd label values too: the text format escapes backslash, quote and newline.
ACCOUNTS = ["desk-a", "desk-b", 'we"ird\\one\n']
ENDPOINTS = ["server_time", "query_dcp_info"]


def twins(seed: int) -> tuple[CollectorRegistry, CollectorRegistry, list]:
    """The same random history applied to prometheus_client's metrics and to ours."""
    ours_reg, theirs_reg = CollectorRegistry(), CollectorRegistry()
    pairs = [
        (
            LabelledGauge("g", "a gauge\\ with \n help", LABELS, registry=ours_reg),
            Gauge("g", "a gauge\\ with \n help", LABELS, registry=theirs_reg),
        ),
        (
            LabelledCounter("c", "a counter", LABELS, registry=ours_reg),
            Counter("c", "a counter", LABELS, registry=theirs_reg),
        ),
        (
            LabelledHistogram("h", "a histogram", LABELS, buckets=RTT_BUCKETS, registry=ours_reg),
            Histogram("h", "a histogram", LABELS, buckets=RTT_BUCKETS, registry=theirs_reg),
        ),
        (
            LabelledHistogram("z", "labels sorted after le", ["zone"], buckets=(1, 2), registry=ours_reg),
            Histogram("z", "labels sorted after le", ["zone"], buckets=(1, 2), registry=theirs_reg),
        ),
    ]
    rng = random.Random(seed)
    for _ in range(400):
        ours, theirs = rng.choice(pairs)
        labels = ["north"] if ours._labelnames == ("zone",) else [rng.choice(ACCOUNTS), rng.choice(ENDPOINTS)]
        action = rng.random()
        if action < 0.05:
            for metric in (ours, theirs):
                try:
                    metric.remove(*labels)
                except KeyError:
                    pass
        elif isinstance(ours, LabelledGauge):
            value = rng.choice([0, 1, 2.5, -3, 1e21, 1_700_000_000.25, float("inf")])
            ours.labels(*labels).set(value)
            theirs.labels(*labels).set(value)
        elif isinstance(ours, LabelledCounter):
            amount = rng.choice([0, 1, 3.25])
            ours.labels(*labels).inc(amount)
            theirs.labels(*labels).inc(amount)
        else:
            value = rng.choice([0.0, 0.005, 0.0051, 0.3, 1, 2, 7.0, 99.0])
            ours.labels(*labels).observe(value)
            theirs.labels(*labels).observe(value)
    return ours_reg, theirs_reg, pairs


@pytest.mark.parametrize("seed", range(5))
def test_same_history_gives_the_same_exposition(seed):
    ours, theirs, _ = twins(seed)
    assert generate_latest(ours) == generate_latest(theirs)
    assert generate_openmetrics(ours) == generate_openmetrics(theirs)


@pytest.mark.parametrize("seed", range(5))
def test_direct_text_rendering_matches_generate_latest(seed):
    ours, _, _ = twins(seed)
    assert text_exposition(ours) == generate_latest(ours)
    assert openmetrics_exposition(ours) == generate_openmetrics(ours)


def test_direct_text_rendering_of_a_populated_exporter_registry_matches_generate_latest():
    """Labelled families and prometheus_client's own (process, build info, ping gap) in one body."""
    metrics = Metrics(clock=lambda: 1_000.0)
    for account in ACCOUNTS:
        metrics.add_account(account, environment="mainnet", mode="guardian", ping_interval=20, poll_interval=30)
        metrics.ping_gap.set_source(account, lambda: 990.0)
        metrics.ws_rtt.labels(account).observe(0.02)
        metrics.api_duration.labels("mainnet", "query_dcp_info").observe(0.3)
        metrics.api_errors.labels(account, "query_dcp_info", "10004").inc()
    metrics.set_shard(0, 1, len(ACCOUNTS))

    def steady(body: bytes) -> list[bytes]:  # the process collector's CPU and memory move between two reads
        return [line for line in body.splitlines() if not line.startswith(b"process_")]

    assert steady(text_exposition(metrics.registry)) == steady(generate_latest(metrics.registry))
    assert steady(openmetrics_exposition(metrics.registry)) == steady(generate_openmetrics(metrics.registry))


PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "writer"),
    [
        ("", text_exposition),
        ("text/plain;version=0.0.4", text_exposition),
        (PROMETHEUS_ACCEPT, openmetrics_exposition),
        ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8", openmetrics_exposition),
        ("application/openmetrics-text;version=1.0.0;escaping=dots", None),  # renames: prometheus_client's own
    ],
)
def test_the_direct_writer_serves_what_prometheus_asks_for(accept, writer):
    encoder, _ = choose_encoder(accept)
    assert direct(encoder) is (writer or encoder)


def test_samples_are_read_when_collected_not_when_read():
    gauge = LabelledGauge("g", "g", ["a"])
    gauge.labels("x").set(1)
    (family,) = gauge.collect()
    gauge.labels("x").set(2)
    gauge.labels("y").set(3)
    assert [(s.labels, s.value) for s in family.samples] == [({"a": "x"}, 1.0)]


def test_api_errors_alike():
    ours, theirs = LabelledCounter("c", "c", ["a"]), Counter("c", "c", ["a"])
    for metric in (ours, theirs):
        with pytest.raises(ValueError):
            metric.labels("x").inc(-1)
        with pytest.raises(ValueError):
            metric.labels("x", "y")
        metric.remove("never")  # no such series: nothing to do
        metric.labels(a="kw").inc()
    assert ours.labels("kw").value == theirs.labels("kw")._value.get() == 1
