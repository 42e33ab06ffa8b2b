"""The supervisor's prepared poll projection writes what the projection functions write, byte for byte."""

from prometheus_client import generate_latest

from exporter.bybit.errors import hint
from exporter.bybit.models import DcpSetting
from exporter.metrics import Metrics
from exporter.monitor.projections import PollProjection, apply_dcp_info, forget_dcp_info, set_poll_error

POLLS = [
    {"DERIVATIVES": DcpSetting("DERIVATIVES", "ON", 10)},
    {"SPOT": DcpSetting("SPOT", "ON", 30), "OPTIONS": DcpSetting("OPTIONS", "OFF", 5)},
    ("10003", None),  # a failed poll
    ("10003", None),  # the same failure again
    ("network", hint("network", "tls_certificate")),  # a code of its own hint
    ("network", None),  # the same code, another hint
    ("10016", None),
    {},
    ("10003", None),
    {"DERIVATIVES": DcpSetting("DERIVATIVES", "ON", 12)},
]


def exposition(metrics: Metrics) -> list[bytes]:
    """The exporter's own lines (the process collector's CPU and memory differ between two reads)."""
    return [line for line in generate_latest(metrics.registry).splitlines() if b"bybit_dcp" in line]


def test_prepared_projection_matches_the_functions_over_good_and_failed_polls():
    by_functions, prepared = Metrics(clock=lambda: 0.0), Metrics(clock=lambda: 0.0)
    projection = PollProjection(prepared, "desk-a")
    for metrics in (by_functions, prepared):  # another account's failing poll, which must stay
        set_poll_error(metrics, "desk-b", "10002")
    for at, reported in enumerate(POLLS):
        if isinstance(reported, tuple):
            code, advice = reported
            by_functions.up.labels("desk-a").set(0)
            forget_dcp_info(by_functions, "desk-a")
            set_poll_error(by_functions, "desk-a", code, advice)
            projection.failed(code, advice)
        else:
            by_functions.up.labels("desk-a").set(1)
            by_functions.last_poll_success.labels("desk-a").set(at)
            apply_dcp_info(by_functions, "desk-a", reported)
            set_poll_error(by_functions, "desk-a", None)
            projection.succeeded(reported, at)
        assert exposition(prepared) == exposition(by_functions), reported
    assert [labels[0] for labels, _ in prepared.last_poll_error.rows()] == ["desk-b"]
