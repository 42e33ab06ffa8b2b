"""Grafana dashboard, static checks: structure, units, descriptions, $__rate_interval, and
that every metric name used by the dashboard or the alert rules is one the exporter exposes.

The exposed names come from a real exporter.metrics.Metrics rendered by prometheus-client and
parsed back, plus the recording rules defined in alerts/: a renamed metric fails here instead of
leaving an empty panel or an alert that can never fire. No network.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import iter_panels, load_dashboard, rule_groups
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
DATASOURCE_REF = "${datasource}"
# Series Prometheus itself adds to every target.
PROMETHEUS_METRICS = {"up"}


# ------------------------------------------------------------------ helpers


def content_panels(dashboard: dict) -> list[dict]:
    return [p for p in iter_panels(dashboard) if p["type"] != "row"]


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in content_panels(dashboard) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if a.get("expr")]
    return exprs


def rules() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"]]


def recording_rule_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def exposed_metric_names() -> set[str]:
    """Every series name a scrape of the exporter can contain, with _total/_bucket/... suffixes."""
    metrics = Metrics()
    metrics.add_account(
        "probe",
        environment="mainnet",
        mode="guardian",
        desired_windows={"DERIVATIVES": 10},
        ping_interval=20.0,
        pong_timeout=10.0,
        poll_interval=30.0,
    )
    metrics.ping_gap.set_source("probe", lambda: 0.0)
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        names.update(sample.name for sample in family.samples)
        # Families with no sample yet (labelled gauges set later) still fix their names.
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_NUMBER_WORDS = {"inf", "nan"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, labels or keywords."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub("", text)
    return {n for n in _IDENT.findall(text) if n.lower() not in _KEYWORDS | _NUMBER_WORDS}


_RANGE_FUNCS = re.compile(r"\b(rate|irate|increase)\s*\(")


def range_function_windows(expr: str) -> list[tuple[str, str]]:
    """(function, range) of every rate/irate/increase call in an expression."""
    found = []
    for match in _RANGE_FUNCS.finditer(expr):
        depth, i = 1, match.end()
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        body = _STRING.sub('""', expr[match.end() : i - 1]).strip()
        window = re.search(r"\[([^\[\]]*)\]$", body)
        found.append((match.group(1), window.group(1) if window else ""))
    return found


def test_helpers_understand_promql():
    expr = (
        'sum by (account, le) (rate(bybit_dcp_ws_ping_rtt_seconds_bucket{job=~"$job", account=~"a|b"}[$__rate_interval]))'
        " / on (job, instance) group_left () account:bybit_dcp_x:ratio and up == 0"
    )
    assert metric_names_in(expr) == {"bybit_dcp_ws_ping_rtt_seconds_bucket", "account:bybit_dcp_x:ratio", "up"}
    assert range_function_windows('increase(foo[5m]) + rate(bar{a="]"}[$__rate_interval])') == [
        ("increase", "5m"),
        ("rate", "$__rate_interval"),
    ]


# ------------------------------------------------------------------ the dashboard

DASHBOARD = load_dashboard()
PANELS = content_panels(DASHBOARD)
PANEL_IDS = [f"{p['id']}-{p['title']}" for p in PANELS]


def test_dashboard_identity():
    assert DASHBOARD["uid"] == "bybit-dcp"
    assert DASHBOARD["title"]
    assert 36 <= DASHBOARD["schemaVersion"] <= 41
    assert DASHBOARD.get("description")


def test_panel_ids_unique():
    ids = [p["id"] for p in iter_panels(DASHBOARD)]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid():
    for panel in iter_panels(DASHBOARD):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]


def test_variables():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "account"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["datasource"]["uid"] == DATASOURCE_REF
        assert var["definition"].startswith("label_values(")
        assert var["multi"] is True and var["includeAll"] is True
    assert "$job" in variables["account"]["definition"]


@pytest.mark.parametrize("panel", PANELS, ids=PANEL_IDS)
def test_panel_has_unit_description_and_datasource(panel):
    assert panel.get("description", "").strip(), "every panel explains itself"
    assert panel["fieldConfig"]["defaults"].get("unit"), "every panel has a unit"
    assert panel["datasource"]["uid"] == DATASOURCE_REF
    assert panel["targets"], "panel without a query"
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == DATASOURCE_REF
        assert target["expr"].strip()


def test_every_rate_uses_rate_interval():
    for expr in dashboard_exprs(DASHBOARD):
        for func, window in range_function_windows(expr):
            assert window == "$__rate_interval", f"{func}() over [{window}] in: {expr}"


def _without_account() -> set[str]:
    """Families the exporter labels without ``account`` (say, the REST latency per environment)."""
    return {
        family._name
        for family in vars(Metrics()).values()
        if hasattr(family, "_labelnames") and "account" not in family._labelnames
    }


def test_queries_filter_by_job_and_account():
    """Every query keeps to the chosen jobs, and to the chosen accounts where the series has one."""
    process_wide = _without_account()
    assert "bybit_dcp_api_request_duration_seconds" in process_wide
    for expr in dashboard_exprs(DASHBOARD):
        for name, matchers in re.findall(r"(bybit_dcp_\w+|[a-z_]+:bybit_dcp_\w+:\w+)\{([^}]*)\}", expr):
            assert 'job=~"$job"' in matchers, expr
            family = re.sub(r"_(bucket|count|sum|total)$", "", name)
            assert ('account=~"$account"' in matchers) != (family in process_wide), expr


def test_dashboard_covers_the_issue():
    """Status, heartbeat against the window, RTT, reconnects, triggers, API errors, skew, headroom, re-assert."""
    text = " ".join(dashboard_exprs(DASHBOARD))
    for needle in (
        "bybit_dcp_enabled",
        "bybit_dcp_window_seconds",
        "bybit_dcp_desired_window_seconds",
        "bybit_dcp_window_drift",
        "bybit_dcp_ws_ping_gap_seconds",
        "histogram_quantile(0.9, sum by (account, le) (rate(bybit_dcp_ws_ping_rtt_seconds_bucket",
        "bybit_dcp_ws_reconnects_total",
        "bybit_dcp_triggers_total",
        "bybit_dcp_cancelled_orders_total",
        "bybit_dcp_api_errors_total",
        "bybit_dcp_clock_skew_seconds",
        "bybit_dcp_api_rate_limit_remaining",
        "bybit_dcp_reassert_attempts_total",
        "bybit_dcp_reassert_failures_total",
    ):
        assert needle in text, needle
    annotations = [a for a in DASHBOARD["annotations"]["list"] if a.get("expr")]
    assert any("bybit_dcp_triggers_total" in a["expr"] for a in annotations)
    assert all(a["datasource"]["uid"] == DATASOURCE_REF for a in annotations)


# ------------------------------------------------------------------ names against the exporter


def test_dashboard_metric_names_are_exposed():
    known = exposed_metric_names() | recording_rule_names() | PROMETHEUS_METRICS
    for expr in dashboard_exprs(DASHBOARD):
        unknown = metric_names_in(expr) - known
        assert not unknown, f"{sorted(unknown)} in {expr}"


def test_rule_metric_names_are_exposed():
    known = exposed_metric_names() | recording_rule_names() | PROMETHEUS_METRICS
    for rule in rules():
        unknown = metric_names_in(rule["expr"]) - known
        assert not unknown, f"{sorted(unknown)} in {rule.get('alert') or rule.get('record')}"


def test_every_recording_rule_is_used():
    used = " ".join(dashboard_exprs(DASHBOARD) + [r["expr"] for r in rules()])
    for name in recording_rule_names():
        assert re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", used), f"recording rule {name} is never used"


def test_a_renamed_metric_would_be_caught():
    assert "bybit_dcp_triggers_total" in exposed_metric_names()
    assert "bybit_dcp_triggers" not in exposed_metric_names()  # counters are exposed with _total
    assert "bybit_dcp_ws_ping_rtt_seconds_bucket" in exposed_metric_names()
    assert "bybit_dcp_ws_ping_gap_seconds" in exposed_metric_names()


# ------------------------------------------------------------------ provisioning


def test_provisioning_files():
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "bybit-dcp.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# ------------------------------------------------------------------ runbook <-> dashboard


def test_runbook_names_real_panels():
    """The runbook tells on-call which panel to open: each italic name must be a panel or row title."""
    runbook = (ROOT / "alerts" / "runbook.md").read_text()
    text = re.sub(r"\s*\n\s*", " ", runbook)  # emphasis may wrap across lines
    text = re.sub(r"`[^`]*`", "", text)  # code spans (dcp.*) are not emphasis
    text = re.sub(r"\*\*[^*\n]+\*\*", "", text)  # bold is not a panel name
    named = set(re.findall(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])", text))
    titles = {p["title"] for p in iter_panels(DASHBOARD)} | {DASHBOARD["title"]}
    prometheus_ui = {"Status → Targets", "Status → Configuration"}
    assert named, "the runbook names no panel"
    unknown = named - titles - prometheus_ui
    assert not unknown, f"runbook names panels the dashboard does not have: {sorted(unknown)}"
