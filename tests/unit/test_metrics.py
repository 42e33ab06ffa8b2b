"""The metric contract: every name dashboards and alerts rely on exists, with its type and
labels, exported from the start, and the exposition passes ``promtool check metrics``; and
every spec of the table (``exporter/metrics/specs.py``) is exposed as it says."""

import re

from exposition_fixture import fuller
from helpers import ROOT
from populated_metrics import populated
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.config import AccountConfig, GuardianLiveness
from exporter.dcp import CATEGORIES, PRODUCTS
from exporter.metrics import ENDPOINTS, Metrics, specs
from exporter.metrics.registry import DOMAINS
from exporter.monitor.guardian import Guardian
from exporter.monitor.liveness import LIVENESS_ERROR_REASONS, TRANSITIONS
from exporter.secrets import Secret

# The contract dashboards and alerts were built on (docs/metrics.md has every metric): renaming any breaks them.
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


def test_ping_gap_is_computed_at_scrape_time():
    now = [1_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.ping_gap.set_source("desk-a", lambda: 990.0)
    gap = lambda: families(metrics)["bybit_dcp_ws_ping_gap_seconds"].samples[0].value
    assert gap() == 10.0
    now[0] = 1_025.0
    assert gap() == 35.0


def test_api_failures_sum_every_code_of_an_endpoint():
    metrics = populated()
    metrics.api_errors.labels("desk-a", "query_dcp_info", "timeout").inc(2)
    metrics.api_errors.labels("desk-a", "order_history", "10002").inc()
    failures = {
        s.labels["endpoint"]: s.value
        for s in families(metrics)["bybit_dcp_api_failures"].samples
        if s.labels["account"] == "desk-a"
    }
    assert failures == {"query_dcp_info": 3.0, "order_history": 1.0} | {
        e: 0.0 for e in ENDPOINTS if e not in ("query_dcp_info", "order_history")
    }


# ------------------------------------------------------------------ every spec of the table


def exposed_families(metrics: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}


def test_the_contract_above_is_in_the_table_of_specs():
    by_name = {spec.name: spec for spec in specs.SPECS}
    for name, (kind, labels) in CONTRACT.items():
        assert name in by_name, f"{name} is not a spec"
        assert (by_name[name].kind, set(by_name[name].labels)) == (kind, labels), name


async def test_every_spec_is_exposed_with_its_type_labels_and_help_and_nothing_else_is():
    exposed = exposed_families(fuller())  # a value in every family (the task count needs a running loop)
    for spec in specs.SPECS:
        assert spec.name in exposed, f"{spec.name} is missing"
        family = exposed[spec.name]
        assert family.type == spec.kind, f"{spec.name} is a {family.type}, its spec says {spec.kind}"
        assert family.samples, f"{spec.name} has no sample to check its labels by"
        for sample in family.samples:
            got = [k for k in sample.labels if k != "le"]
            assert sorted(got) == sorted(spec.labels), f"{spec.name} has labels {got}, its spec says {spec.labels}"
        if spec.source != specs.PROCESS:
            assert family.documentation == spec.help, spec.name
    assert set(exposed) == {spec.name for spec in specs.SPECS}, "a family without a spec"


def test_metrics_has_one_attribute_per_spec_of_the_type_its_annotation_says():
    metrics = Metrics()
    recorded = [spec for spec in specs.SPECS if spec.source != specs.PROCESS]
    annotations = Metrics.__annotations__
    assert list(annotations) == [spec.attr for spec in recorded], "Metrics' annotations and the table differ"
    for spec in recorded:
        family = getattr(metrics, spec.attr)
        assert metrics.family(spec) is family
        assert type(family).__name__ == annotations[spec.attr], spec.attr


def test_each_spec_is_named_after_its_attribute_and_listed_once():
    constants = {name: value for name, value in vars(specs).items() if isinstance(value, specs.MetricSpec)}
    for constant, spec in constants.items():
        assert constant == spec.attr.upper(), f"specs.{constant} holds {spec.attr}"
        assert spec in specs.SPECS, f"specs.{constant} is not in SPECS"
    names = [spec.name for spec in specs.SPECS]
    assert len(names) == len(set(names))
    assert {spec.group for spec in specs.SPECS} == set(specs.GROUPS)


def _series_of(spec: specs.MetricSpec, exposed: dict, account: str) -> dict:
    family = exposed.get(spec.name)
    samples = [] if family is None else family.samples
    value_name = spec.sample if spec.kind != specs.HISTOGRAM else spec.count_sample
    return {
        tuple(v for k, v in s.labels.items() if k != "account"): s.value
        for s in samples
        if s.name == value_name and s.labels.get("account") == account
    }


def test_series_from_the_start_are_what_each_specs_rule_says():
    """After ``add_account``, each family holds exactly the series its ``at_zero`` rule names
    for the account, at the rule's value; families without a rule (or made later, by the
    stream or the guardian) hold none."""
    metrics = Metrics()
    configured = {"ping_interval": 20.0, "pong_timeout": 10.0, "poll_interval": 30.0}
    metrics.add_account(
        "desk-x", environment="testnet", mode="guardian", desired_windows={"SPOT": 10, "OPTIONS": 40}, **configured
    )
    exposed = exposed_families(metrics)
    for spec in specs.SPECS:
        rule, got = spec.at_zero, _series_of(spec, exposed, "desk-x")
        if "account" not in spec.labels:
            continue
        if rule is None or rule.by != specs.ADD_ACCOUNT:
            assert got == {}, f"{spec.name} has series before any value: {got}"
            continue
        if rule.only == "desired":
            want = {("SPOT",): 10.0, ("OPTIONS",): 40.0} if rule.value == "desired_windows" else {}
            want = want or {("SPOT",): 0.0, ("OPTIONS",): 0.0}
            if rule.and_each:
                want = {(product, value): 0.0 for (product,) in want for value in rule.and_each}
        elif rule.each:
            want = {(value,): 0.0 for value in DOMAINS[rule.each]}
        elif isinstance(rule.value, str):
            want = {(): configured[rule.value]}
        elif spec.attr == "account_info":
            want = {("testnet", "guardian"): 1.0}
        else:
            want = {(): float(rule.value)}
        assert got == want, spec.name


def test_configured_values_not_given_make_no_series():
    metrics = Metrics()
    metrics.add_account("desk-y", environment="mainnet", mode="observer")
    exposed = exposed_families(metrics)
    for spec in specs.SPECS:
        if spec.at_zero is not None and isinstance(spec.at_zero.value, str):
            assert _series_of(spec, exposed, "desk-y") == {}, spec.name


def test_families_made_at_the_start_are_exposed_before_any_account():
    exposed = exposed_families(Metrics())
    for spec in specs.SPECS:
        if spec.at_zero is not None and spec.at_zero.by == specs.START:
            assert exposed[spec.name].samples, spec.name
    (build,) = exposed[specs.BUILD_INFO.name].samples
    assert build.labels == {"version": __version__} and build.value == 1.0


def test_adding_an_account_again_keeps_its_counts():
    metrics = Metrics()
    metrics.add_account("desk-z", environment="mainnet", mode="observer")
    metrics.triggers.labels("desk-z", "SPOT").inc(3)
    metrics.ws_connected.labels("desk-z").set(1)
    metrics.add_account("desk-z", environment="mainnet", mode="observer")
    assert metrics.triggers.labels("desk-z", "SPOT").value == 3.0
    assert metrics.ws_connected.labels("desk-z").value == 0.0  # a gauge is set, as it always was


# promtool check metrics (Prometheus' promlint) and the naming guide: the rules a name can break.
NAME = re.compile(r"[a-z][a-z0-9_]*")
NOT_BASE_UNITS = ("milliseconds", "microseconds", "nanoseconds", "minutes", "hours", "days", "kilobytes", "megabytes")


def test_every_spec_name_passes_the_naming_rules():
    for spec in specs.SPECS:
        name, sample = spec.name, spec.sample
        assert NAME.fullmatch(name), f"{name}: lower snake case only"
        assert all(NAME.fullmatch(label) and not label.startswith("__") for label in spec.labels), name
        assert not name.endswith("_total"), f"{name}: a counter's _total is added to its samples"
        assert spec.kind == specs.COUNTER or not sample.endswith("_total"), f"{name}: _total is for counters"
        assert not name.endswith(("_count", "_sum", "_bucket", "_created")), f"{name}: a reserved suffix"
        assert not any(unit in name.split("_") for unit in NOT_BASE_UNITS), f"{name}: use base units"
        assert not any(kind in name.split("_") for kind in ("gauge", "counter", "histogram")), name
        assert name.startswith(("bybit_dcp_", "process_")), f"{name}: the exporter's prefix"
        assert spec.kind != specs.HISTOGRAM or spec.buckets, f"{name}: a histogram needs buckets"
        if spec.source != specs.PROCESS:
            assert spec.help.strip() and spec.help.endswith("."), f"{name}: a help sentence"
        if name.endswith("_info"):
            assert spec.kind == specs.GAUGE, f"{name}: an info metric is a gauge of 1"


def test_the_status_board_names_metrics_through_their_specs():
    """``exporter/status`` reads series by ``specs.X.sample`` and families by ``metrics.family``:
    a metric name or a Metrics attribute written there as a string would outlive a change of
    its spec unnoticed."""
    for path in sorted((ROOT / "exporter" / "status").glob("*.py")):
        source = path.read_text()
        for quote in ('"', "'"):
            assert f"{quote}bybit_dcp_" not in source, f"{path.name} names a metric by a string"
            assert f"{quote}process_" not in source, path.name
        assert "getattr(" not in source, f"{path.name} looks a Metrics attribute up by name"


async def test_a_guardian_makes_the_series_its_specs_rules_name(session):
    """The rules with ``by=GUARDIAN`` say what ``Guardian`` creates when it starts (it lives in
    the monitor layer, which the metrics cannot import): 0 for every ``to``, for each product
    it guards, and the rejected-call count."""

    account = AccountConfig(
        name="bot",
        api_key="guard-key-0001",
        api_secret=Secret("guard-secret-0001"),
        environment="custom",
        rest_url="http://127.0.0.1:9/",
        ws_url="ws://127.0.0.1:9/",
        mode="guardian",
        guardian_products=("DERIVATIVES",),
        guardian_liveness=GuardianLiveness("http", 1.0, token=Secret("bot-token-0001")),
    )
    metrics = Metrics()
    Guardian(account, metrics, session)  # nothing connects before it runs
    exposed = exposed_families(metrics)
    domains = {"to": TRANSITIONS, "product": account.guardian_products, "reason": LIVENESS_ERROR_REASONS}
    for spec in specs.SPECS:
        rule = spec.at_zero
        if rule is None or rule.by != specs.GUARDIAN or spec.source == specs.AT_SCRAPE:
            continue
        want = {(value,): 0.0 for value in domains[rule.each]} if rule.each else {(): 0.0}
        assert _series_of(spec, exposed, "bot") == want, spec.name


def test_every_call_of_the_monitor_is_named_in_the_one_table_of_rest_calls():
    """The labels the metrics start at 0 are the REST client's own names for its calls."""
    from exporter.bybit import rest  # the client's paths, read from the same table
    from exporter.dcp import ENDPOINT_PATHS, MONITOR_ENDPOINTS
    from exporter.metrics import ENDPOINTS

    assert ENDPOINTS == MONITOR_ENDPOINTS and set(ENDPOINTS) <= set(ENDPOINT_PATHS)
    assert ENDPOINT_PATHS["open_orders"] == rest.OPEN_ORDERS == "/v5/order/realtime"
    assert ENDPOINT_PATHS["query_dcp_info"] == rest.QUERY_DCP_INFO == "/v5/account/query-dcp-info"


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
