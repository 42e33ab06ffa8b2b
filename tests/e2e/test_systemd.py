"""deploy/systemd: the unit passes `systemd-analyze verify` with no warning, its hardening scores
at most 2.0 on `systemd-analyze security` (0 = locked down, 10 = none), and the example
configuration's secrets are exactly the unit's LoadCredential= entries.

Both analyses read the unit file offline; systemd need not be running. systemd-analyze comes
with Debian's systemd package (scripts/test installs it): the test fails, never skips, without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from exporter.config import load_config

UNIT = ROOT / "deploy" / "systemd" / "bybit-dcp-exporter.service"
CONFIG = ROOT / "deploy" / "systemd" / "config.yml"
INSTALLED_BINARY = "/opt/bybit-dcp-exporter/bin/bybit-dcp-exporter"
CREDENTIALS_DIRECTORY = "/run/credentials/bybit-dcp-exporter.service"


def analyze(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze not found: scripts/test installs it (or says how)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def unit(tmp_path):
    """The unit with ExecStart pointing at this checkout's exporter (verify checks it exists)."""
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    path = tmp_path / UNIT.name
    path.write_text(text.replace(INSTALLED_BINARY, str(Path(sys.executable).parent / "bybit-dcp-exporter")))
    return path


def settings() -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in UNIT.read_text().splitlines() if re.match(r"^[A-Z]\w*=", line)]


def test_systemd_analyze_verify_is_clean(unit):
    result = analyze("verify", f"./{unit.name}", cwd=unit.parent)
    # verify exits 0 on an unknown key or a bad value, and says so: any output is a failure.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_verify_would_catch_a_misspelt_setting(unit):
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key" in analyze("verify", f"./{unit.name}", cwd=unit.parent).stderr


def test_the_hardening_scores_well(unit):
    result = analyze("security", "--offline=yes", "--threshold=20", f"./{unit.name}", cwd=unit.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_the_hardening_settings_are_there():
    values = dict(settings())
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }
    assert {k: values.get(k) for k in expected} == expected
    assert set(values["RestrictAddressFamilies"].split()) <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}


def test_the_example_config_reads_its_secrets_from_the_units_credentials(tmp_path):
    credentials = dict(value.split(":", 1) for key, value in settings() if key == "LoadCredential")
    accounts = yaml.safe_load(CONFIG.read_text())["accounts"]
    names = [a["api_secret_file"].removeprefix(CREDENTIALS_DIRECTORY + "/") for a in accounts]
    assert sorted(names) == sorted(credentials)
    assert "--config.file=/etc/bybit-dcp-exporter/config.yml" in dict(settings())["ExecStart"]
    # Valid for the exporter once systemd has placed the credentials.
    for name in names:
        (tmp_path / name).write_text("hmac-secret")
    config_file = tmp_path / "config.yml"
    config_file.write_text(CONFIG.read_text().replace(CREDENTIALS_DIRECTORY, str(tmp_path)))
    assert [a.name for a in load_config(str(config_file), env={}).accounts] == [a["name"] for a in accounts]
