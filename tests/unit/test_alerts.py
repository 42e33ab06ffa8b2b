"""Alert rules: promtool validity and unit tests, plus the structure on-call relies on.

Every alert must page or ticket (severity), say what happened (summary, a templated
description), point at its runbook entry, avoid paging on a blip (explicit `for` and
`keep_firing_for`), and be covered by a promtool unit test that shows it firing and silent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import rule_files, rule_groups

ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = ROOT / "alerts"
RULE_FILES = rule_files()
RULE_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOK = ALERTS_DIR / "runbook.md"
RUNBOOK_BASE = "https://github.com/bybit-dcp-exporter/bybit-dcp-exporter/blob/main/alerts/runbook.md#"
RUNBOOK_PARTS = ("**Meaning.**", "**Impact on trading.**", "**Confirm.**", "**Act.**", "**Escalate.**")


ALERTS = [r for g in rule_groups() for r in g["rules"] if "alert" in r]
RECORDS = [r for g in rule_groups() for r in g["rules"] if "record" in r]
ALERT_IDS = [a["alert"] for a in ALERTS]


def _github_anchor(heading: str) -> str:
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            current = _github_anchor(line[3:])
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def _unit_test_cases() -> list[tuple[str, list]]:
    """(alertname, exp_alerts) for every alert_rule_test in alerts/tests/."""
    cases = []
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.append((case["alertname"], case.get("exp_alerts") or []))
    return cases


def test_rule_files_exist():
    assert RULE_FILES, "no alerts/*.rules.yml"
    assert RULE_TESTS, "no alerts/tests/*.yml"
    assert len(ALERTS) >= 12


def test_alert_names_unique():
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_structure(alert):
    labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
    assert labels.get("severity") in {"critical", "warning", "info"}
    assert annotations.get("summary", "").strip()
    description = annotations.get("description", "")
    assert "$labels" in description or "$value" in description, "description must be templated"
    # Explicit timing: a blip must not page, a real incident must not flap.
    assert "for" in alert, "set `for` explicitly (0m is a decision too)"
    assert "keep_firing_for" in alert


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_runbook_entry(alert):
    url = alert["annotations"].get("runbook_url", "")
    assert url.startswith(RUNBOOK_BASE), url
    anchor = url[len(RUNBOOK_BASE) :]
    sections = _runbook_sections()
    assert anchor in sections, f"runbook.md has no heading for #{anchor}"
    body = sections[anchor]
    missing = [part for part in RUNBOOK_PARTS if part not in body]
    assert not missing, f"runbook entry #{anchor} lacks {missing}"


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_IDS)
def test_alert_has_unit_tests(alert):
    """Each alert has a promtool case where it fires with labels and annotations, and one where it is silent."""
    name = alert["alert"]
    cases = [exp for alertname, exp in _unit_test_cases() if alertname == name]
    firing = [exp for exp in cases if exp]
    assert firing, f"no promtool test shows {name} firing"
    assert any(not exp for exp in cases), f"no promtool test shows {name} silent"
    for exp in firing:
        for expected in exp:
            assert expected.get("exp_labels", {}).get("severity") == alert["labels"]["severity"]
            assert set(expected.get("exp_annotations", {})) >= {"summary", "description", "runbook_url"}


def test_critical_alerts_do_not_fire_on_one_evaluation_except_triggers():
    """Critical alerts wait (for > 0) except DCP triggered, which is a fact rather than a level."""
    for alert in ALERTS:
        if alert["labels"]["severity"] == "critical" and alert["alert"] != "BybitDcpTriggered":
            assert alert["for"] not in ("0", "0s", "0m"), alert["alert"]


def test_triggered_alert_fires_at_once_and_stays_visible():
    (alert,) = [a for a in ALERTS if a["alert"] == "BybitDcpTriggered"]
    assert alert["for"] in ("0", "0s", "0m")
    assert alert["labels"]["severity"] == "critical"
    minutes = int(re.fullmatch(r"(\d+)m", alert["keep_firing_for"]).group(1))
    assert 15 <= minutes <= 60
    assert "bybit_dcp_trigger_info" in alert["expr"]  # one alert per trigger, not per product


def test_each_reassertion_is_an_alert_of_its_own():
    """As each trigger is: the re-assertion's time is a label, so a second one soon after the
    first is a new alert that Alertmanager notifies, not the same alert still firing."""
    (alert,) = [a for a in ALERTS if a["alert"] == "BybitDcpWindowReasserted"]
    assert alert["expr"].startswith('count_values without () ("reassertion",')
    assert "{{ $labels.reassertion" in alert["annotations"]["description"]


def test_recording_rule_names_follow_convention():
    for rule in RECORDS:
        # level:metric[:operations] (Prometheus naming practice for recording rules).
        assert re.fullmatch(r"[a-z_]+:bybit_dcp_[a-z0-9_]+(:[a-z0-9_]+)?", rule["record"]), rule["record"]
