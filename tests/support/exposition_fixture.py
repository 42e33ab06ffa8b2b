"""The exposition of a populated registry, as the guard against an unintended change of it.

``tests/support/exposition/*.txt`` hold what these scenarios exposed when the metrics were
still written out by hand, before they were built from the table of metric specs; the test
in ``tests/unit/test_exposition_fixture.py`` asserts today's bytes equal them. Write them anew
only for a change of the exposition that is meant (a new metric, a new help text):

    python3 tests/support/exposition_fixture.py

The process collector's families (CPU, memory, file descriptors) change from run to run and
are left out; the build's version is written as ``{version}``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from populated_metrics import populated

from exporter import __version__
from exporter.metrics import Metrics
from exporter.metrics.labelled import openmetrics_exposition, text_exposition

HERE = Path(__file__).parent / "exposition"


def fuller() -> Metrics:
    """``populated()`` with a value in every family the exporter records, and a second account.

    Label values with a quote, a backslash and a newline, a value of a million and more,
    and a series removed, so that escaping, number formatting and series order are covered.
    """
    metrics = populated()
    metrics.add_account("desk-b", environment="testnet", mode="observer")
    metrics.ping_gap.set_source("desk-b", lambda: None)  # no pong yet: no series
    metrics.guardian_liveness_age.set_source("desk-a", lambda: 995.5)
    metrics.enabled.labels("desk-a", "DERIVATIVES").set(0)
    metrics.drift.labels("desk-a", "SPOT").set(1)
    metrics.last_poll_error.labels("desk-b", "other", 'say "no"\\ then\nstop').set(1)
    metrics.last_poll_success.labels("desk-b").set(1_765_000_000.25)
    metrics.api_requests.labels("desk-a", "query_dcp_info").inc(3)
    metrics.api_requests.labels("desk-a", "set_dcp").inc(2_000_000)
    metrics.api_errors.labels("desk-b", "server_time", "timeout").inc(2)
    metrics.api_duration.labels("mainnet", "query_dcp_info").observe(7.5)
    metrics.api_duration.labels("testnet", "server_time").observe(0.02)
    metrics.api_connection_wait.observe(0.003)
    metrics.api_connections_opened.inc(2)
    metrics.invalid_values.labels("desk-a", "updatedTime").inc()
    metrics.backfill_failures.labels("desk-a", "linear").inc()
    metrics.ws_connected.labels("desk-a").set(1)
    metrics.ws_reconnects.labels("desk-a", "pong_timeout").inc()
    for rtt in (0.004, 0.012, 0.3, 9.0):
        metrics.ws_rtt.labels("desk-a").observe(rtt)
    metrics.ws_heartbeat_gap.labels("desk-a").observe(20.5)
    metrics.ws_pong_timeouts.labels("desk-a").inc()
    metrics.ws_dcp_subscribed.labels("desk-a", "SPOT").set(1)
    metrics.ws_invalid_messages.labels("desk-b").inc()
    metrics.cancelled_orders.labels("desk-a", "spot").inc(4)
    metrics.triggers.labels("desk-a", "SPOT").inc()
    metrics.ignored_cancels.labels("desk-a").inc()
    metrics.trigger_info.labels("desk-a", "SPOT", "1700000000000").set(1)
    metrics.trigger_info.labels("desk-a", "SPOT", "1700000100000").set(1)
    metrics.trigger_info.remove("desk-a", "SPOT", "1700000000000")
    metrics.reassert_attempts.labels("desk-a", "SPOT").inc(2)
    metrics.reassert_failures.labels("desk-a", "SPOT").inc()
    metrics.reassert_blocked.labels("desk-b", "SPOT", "credentials").set(1)
    metrics.guardian_armed.labels("desk-a", "SPOT").set(1)
    metrics.guardian_transitions.labels("desk-a", "armed").inc()
    metrics.guardian_transitions.labels("desk-a", "released")
    metrics.guardian_liveness_rejected.labels("desk-a").inc()
    metrics.guardian_liveness_errors.labels("desk-a", "not_vector").inc()
    metrics.drill_last_success.labels("desk-a", "SPOT").set(1)
    metrics.drill_last_run.labels("desk-a", "SPOT").set(1_765_000_100)
    metrics.drill_trigger_delay.labels("desk-a", "SPOT").set(10.4)
    metrics.event_loop_lag.observe(0.0004)
    metrics.event_loop_lag.observe(3.0)
    metrics.set_shard(1, 3, 2)
    return metrics


SCENARIOS: dict[str, Callable[[], Metrics]] = {"populated": populated, "fuller": fuller}
FORMATS: dict[str, Callable[[Metrics], bytes]] = {
    "text": lambda m: text_exposition(m.registry),
    "openmetrics": lambda m: openmetrics_exposition(m.registry),
}


def without_process(exposition: str) -> str:
    """The exposition without the process collector's families, the version as ``{version}``."""
    kept, skipping = [], False
    for line in exposition.splitlines(keepends=True):
        if line.startswith("# HELP "):
            skipping = line.split()[2].startswith("process_")
        if not skipping or line == "# EOF\n":
            kept.append(line)
    return "".join(kept).replace(f'version="{__version__}"', 'version="{version}"')


def exposition(scenario: str, fmt: str) -> str:
    return without_process(FORMATS[fmt](SCENARIOS[scenario]()).decode())


def path(scenario: str, fmt: str) -> Path:
    return HERE / f"{scenario}.{fmt}.txt"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        for fmt in FORMATS:
            path(scenario, fmt).write_text(exposition(scenario, fmt))
            print(path(scenario, fmt), file=sys.stderr)


if __name__ == "__main__":
    main()
