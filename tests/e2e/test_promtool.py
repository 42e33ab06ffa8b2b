"""promtool on what the project ships: the rule files are valid, their unit tests pass, and the
exporter's exposition passes ``promtool check metrics``."""

import subprocess

import pytest
from exposition_fixture import fuller
from helpers import ROOT, require_binary, rule_files
from populated_metrics import populated
from prometheus_client import generate_latest

RULE_FILES = rule_files()
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))


def test_promtool_check_rules():
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests():
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("build", [populated, fuller], ids=["populated", "every-family"])
def test_exposition_is_clean_under_promtool_check_metrics(build):
    """Every spec's family with a value (``fuller``): each name and help passes promtool's lint."""
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(build().registry), capture_output=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), (result.stdout + result.stderr).decode()
