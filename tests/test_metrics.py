"""The metric contract: every name dashboards and alerts rely on exists, with its type and
labels, exported from the start, and the exposition passes ``promtool check metrics``."""

import subprocess

from helpers import require_binary
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.dcp import CATEGORIES, PRODUCTS
from exporter.metrics import ENDPOINTS, Metrics

# The contract (README's metric table): renaming any of these breaks dashboards and alerts.
CONTRACT = {
    "bybit_dcp_up": ("gauge", {"account"}),
    "bybit_dcp_enabled": ("gauge", {"account", "product"}),
    "bybit_dcp_window_seconds": ("gauge", {"account", "product"}),
    "bybit_dcp_desired_window_seconds": ("gauge", {"account", "product"}),
    "bybit_dcp_window_drift": ("gauge", {"account", "product"}),
    "bybit_dcp_last_poll_success_timestamp_seconds": ("gauge", {"account"}),
    "bybit_dcp_api_requests": ("counter", {"account", "endpoint"}),
    "bybit_dcp_api_errors": ("counter", {"account", "endpoint", "code"}),
    "bybit_dcp_api_request_duration_seconds": ("histogram", {"environment", "endpoint"}),
    "bybit_dcp_api_rate_limit_remaining": ("gauge", {"account", "endpoint"}),
    "bybit_dcp_clock_skew_seconds": ("gauge", {"account"}),
    "bybit_dcp_ws_connected": ("gauge", {"account"}),
    "bybit_dcp_ws_reconnects": ("counter", {"account", "reason"}),
    "bybit_dcp_ws_ping_rtt_seconds": ("histogram", {"account"}),
    "bybit_dcp_ws_last_pong_timestamp_seconds": ("gauge", {"account"}),
    "bybit_dcp_ws_ping_gap_seconds": ("gauge", {"account"}),
    "bybit_dcp_ws_heartbeat_gap_seconds": ("histogram", {"account"}),
    "bybit_dcp_ws_pong_timeouts": ("counter", {"account"}),
    "bybit_dcp_ws_dcp_subscribed": ("gauge", {"account", "product"}),
    "bybit_dcp_ws_invalid_messages": ("counter", {"account"}),
    "bybit_dcp_cancelled_orders": ("counter", {"account", "category"}),
    "bybit_dcp_triggers": ("counter", {"account", "product"}),
    "bybit_dcp_last_trigger_timestamp_seconds": ("gauge", {"account", "product"}),
    "bybit_dcp_reassert_attempts": ("counter", {"account", "product"}),
    "bybit_dcp_reassert_failures": ("counter", {"account", "product"}),
    "bybit_dcp_account_info": ("gauge", {"account", "environment", "mode"}),
    "bybit_dcp_exporter_build_info": ("gauge", {"version"}),
    "bybit_dcp_last_poll_error_info": ("gauge", {"account", "code", "hint"}),
    "bybit_dcp_api_failures": ("counter", {"account", "endpoint"}),
    "bybit_dcp_reassert_blocked": ("gauge", {"account", "product", "reason"}),
    "process_cpu_seconds": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
}


def populated() -> Metrics:
    """A registry with one account and a value in every family, as after some running."""
    metrics = Metrics(clock=lambda: 1_000.0)
    metrics.add_account(
        "desk-a",
        environment="mainnet",
        mode="guardian",
        desired_windows={"SPOT": 10},
        ping_interval=20,
        pong_timeout=10,
        poll_interval=30,
    )
    metrics.ping_gap.set_source("desk-a", lambda: 990.0)
    metrics.enabled.labels("desk-a", "SPOT").set(1)
    metrics.window.labels("desk-a", "SPOT").set(10)
    metrics.last_poll_error.labels("desk-a", "10004", "check the secret").set(1)
    metrics.last_poll_success.labels("desk-a").set(990)
    metrics.api_errors.labels("desk-a", "query_dcp_info", "10004").inc()
    metrics.api_duration.labels("mainnet", "query_dcp_info").observe(0.05)
    metrics.rate_limit_remaining.labels("desk-a", "query_dcp_info").set(4)
    metrics.rate_limit.labels("desk-a", "query_dcp_info").set(5)
    metrics.clock_skew.labels("desk-a").set(0.2)
    metrics.ws_last_pong.labels("desk-a").set(990)
    metrics.last_trigger.labels("desk-a", "SPOT").set(900)
    metrics.reassert_last_success.labels("desk-a", "SPOT").set(800)
    return metrics


def families(metrics: Metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_contract_metric_is_exposed_with_its_type_and_labels():
    exposed = families(populated())
    for name, (kind, labels) in CONTRACT.items():
        assert name in exposed, f"{name} is missing"
        family = exposed[name]
        assert family.type == kind, f"{name} is a {family.type}, the contract says {kind}"
        sample_labels = {k for s in family.samples for k in s.labels if k not in ("le", "quantile")}
        assert sample_labels == labels, f"{name} has labels {sample_labels}, the contract says {labels}"


def test_series_known_in_advance_start_at_zero():
    metrics = Metrics()
    metrics.add_account("desk-b", environment="testnet", mode="observer")
    exposed = families(metrics)

    def values(name: str, label: str) -> dict:
        return {
            s.labels[label]: s.value
            for s in exposed[name].samples
            if s.labels.get("account") == "desk-b" and label in s.labels and s.name.endswith(("_total", name))
        }

    assert values("bybit_dcp_enabled", "product") == {}  # unknown until the first good poll, never "off"
    assert values("bybit_dcp_api_failures", "endpoint") == {e: 0.0 for e in ENDPOINTS}
    assert values("bybit_dcp_triggers", "product") == {p: 0.0 for p in PRODUCTS}
    assert values("bybit_dcp_cancelled_orders", "category") == {c: 0.0 for c in CATEGORIES}
    assert values("bybit_dcp_ws_dcp_subscribed", "product") == {p: 0.0 for p in PRODUCTS}
    up = [s.value for s in exposed["bybit_dcp_up"].samples if s.labels["account"] == "desk-b"]
    assert up == [0.0]
    # No desired window: drift and re-assertion cannot happen, so there is nothing to say.
    for name in ("bybit_dcp_window_drift", "bybit_dcp_reassert_attempts", "bybit_dcp_reassert_failures"):
        assert values(name, "product") == {}


def test_drift_and_reassertion_series_start_at_zero_for_the_desired_products_only():
    metrics = Metrics()
    metrics.add_account("desk-c", environment="testnet", mode="observer", desired_windows={"SPOT": 10, "OPTIONS": 30})
    exposed = families(metrics)
    for name in ("bybit_dcp_window_drift", "bybit_dcp_reassert_attempts", "bybit_dcp_reassert_failures"):
        got = {s.labels["product"]: s.value for s in exposed[name].samples if s.labels.get("account") == "desk-c"}
        assert got == {"SPOT": 0.0, "OPTIONS": 0.0}, name


def test_reassert_blocked_starts_at_zero_per_desired_product_and_reason():
    metrics = Metrics()
    metrics.add_account("desk-c", environment="testnet", mode="observer", desired_windows={"SPOT": 10})
    metrics.add_account("desk-d", environment="testnet", mode="observer")
    got = {
        (s.labels["account"], s.labels["product"], s.labels["reason"]): s.value
        for s in families(metrics)["bybit_dcp_reassert_blocked"].samples
    }
    assert got == {("desk-c", "SPOT", "credentials"): 0.0, ("desk-c", "SPOT", "contended"): 0.0}


async def test_task_count_is_counted_at_scrape_time_in_the_running_loop():
    import asyncio

    metrics = Metrics()
    tasks = lambda: families(metrics)["bybit_dcp_exporter_tasks"].samples[0].value
    before = tasks()
    parked = [asyncio.create_task(asyncio.Event().wait()) for _ in range(5)]
    assert tasks() == before + 5
    for task in parked:
        task.cancel()
    await asyncio.gather(*parked, return_exceptions=True)
    assert tasks() == before


def test_task_count_has_no_sample_outside_an_event_loop():
    assert families(Metrics())["bybit_dcp_exporter_tasks"].samples == []


async def test_task_count_is_of_the_exporters_loop_when_a_worker_thread_renders_the_scrape():
    import asyncio

    metrics = Metrics()  # created in the running loop, as run_exporter does
    parked = [asyncio.create_task(asyncio.Event().wait()) for _ in range(3)]
    try:
        in_thread = await asyncio.to_thread(families, metrics)  # as web.py renders /metrics
        assert in_thread["bybit_dcp_exporter_tasks"].samples[0].value >= 3 + 1  # the parked ones and this test
    finally:
        for task in parked:
            task.cancel()
        await asyncio.gather(*parked, return_exceptions=True)


def test_ping_gap_is_computed_at_scrape_time():
    now = [1_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.ping_gap.set_source("desk-a", lambda: 990.0)
    gap = lambda: families(metrics)["bybit_dcp_ws_ping_gap_seconds"].samples[0].value
    assert gap() == 10.0
    now[0] = 1_025.0
    assert gap() == 35.0


def test_exposition_is_clean_under_promtool_check_metrics():
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(populated().registry), capture_output=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), (result.stdout + result.stderr).decode()


def test_api_failures_sum_every_code_of_an_endpoint():
    metrics = populated()
    metrics.api_errors.labels("desk-a", "query_dcp_info", "timeout").inc(2)
    metrics.api_errors.labels("desk-a", "order_history", "10002").inc()
    failures = {
        s.labels["endpoint"]: s.value
        for s in families(metrics)["bybit_dcp_api_failures"].samples
        if s.labels["account"] == "desk-a"
    }
    assert failures == {"query_dcp_info": 3.0, "order_history": 1.0, "server_time": 0.0, "set_dcp": 0.0}
