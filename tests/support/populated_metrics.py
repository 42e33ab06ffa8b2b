"""A Metrics with one account and a value in every family, for tests that read a whole exposition."""

from exporter.metrics import Metrics


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
    metrics.unified_margin_status.labels("desk-a").set(3)
    metrics.unprotected_category.labels("desk-a", "inverse").set(1)
    return metrics
