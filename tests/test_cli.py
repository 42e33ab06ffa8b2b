"""The command line as users run it: a subprocess, exit statuses, signals, --demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__

SECRET = "cli-secret-value-123456"


def run_cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args], capture_output=True, text=True, env=clean, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float, predicate=lambda body: True) -> str:
    """GET ``url`` until it answers 200 and ``predicate(body)``; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read().decode()
                if resp.status == 200 and predicate(body):
                    return body
                last = body
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} not as expected within {timeout} s: {str(last)[:2000]}")


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_bad_config_exits_2_naming_the_field(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(
        "accounts:\n"
        "  - name: desk\n"
        "    api_key: KEY12345\n"
        "    api_secret_env: DESK_SECRET\n"
        "    desired_windows: {SPOT: 500}\n"
    )
    result = run_cli("--config.file", str(path), env={"DESK_SECRET": SECRET})
    assert result.returncode == 2, result.stderr
    assert "accounts[0].desired_windows.SPOT" in result.stderr and "[3, 300]" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_inline_secret_exits_2(tmp_path):
    path = tmp_path / "inline.yml"
    path.write_text(f"accounts:\n  - {{name: desk, api_key: KEY12345, api_secret: {SECRET}}}\n")
    result = run_cli("--config.file", str(path), "--check-config")
    assert result.returncode == 2
    assert "accounts[0].api_secret" in result.stderr and "api_secret_env" in result.stderr
    assert SECRET not in result.stderr


def test_missing_environment_exits_2():
    result = run_cli()
    assert result.returncode == 2 and "BYBIT_API_KEY" in result.stderr


def test_bad_flag_exits_2():
    result = run_cli("--log.format", "xml", env={"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET": SECRET})
    assert result.returncode == 2 and "--log.format" in result.stderr
    result = run_cli("--no-such-flag")
    assert result.returncode == 2


def test_check_config_ok(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    path = tmp_path / "ok.yml"
    path.write_text(
        "accounts:\n"
        "  - {name: a, api_key: KEY12345, api_secret_env: A_SECRET, environment: testnet}\n"
        f"  - {{name: b, api_key: KEY67890, api_secret_file: {secret_file}, mode: guardian, guardian_products: [SPOT]}}\n"
    )
    result = run_cli("--config.file", str(path), "--check-config", env={"A_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    assert "2 account(s)" in result.stdout and "a (testnet, observer)" in result.stdout
    assert "b (mainnet, guardian)" in result.stdout
    assert SECRET not in result.stdout


def test_check_config_from_environment():
    result = run_cli("--check-config", env={"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET": SECRET, "BYBIT_ENV": "testnet"})
    assert result.returncode == 0 and "default (testnet, observer)" in result.stdout
