"""The command line as users run it: a subprocess, exit statuses, signals, --demo."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys

import pytest
from helpers import ROOT, exporter_env, free_port, parse_metrics, wait_for_url

from exporter import __version__
from exporter.cli import SUBCOMMANDS

SECRET = "cli-secret-value-123456"


def run_cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args],
        capture_output=True,
        text=True,
        env=exporter_env(**(env or {})),
        timeout=timeout,
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_simulate_subcommand_delegates():
    result = run_cli("simulate", "--help")
    assert result.returncode == 0 and "--listen" in result.stdout and "simulate" in result.stdout


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


def test_log_level_warn_is_accepted():
    env = {"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET": SECRET}
    result = run_cli("--check-config", "--log.level", "warn", env=env)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in run_cli("--help").stdout.splitlines() if "debug, info" in line]
    assert "warn" in line


def test_help_lists_every_subcommand_with_a_line():
    """Every first argument `main` dispatches on has its line under --help, and runs."""
    source = (ROOT / "exporter" / "cli.py").read_text()
    assert not re.search(r"argv\[0\] ==", source), "dispatch through SUBCOMMANDS, so --help lists it"
    assert {"drill", "simulate"} <= set(SUBCOMMANDS)
    help_text = run_cli("--help").stdout
    for name in SUBCOMMANDS:
        (line,) = [line for line in help_text.splitlines() if re.match(rf"  {name} +\S", line)]
        assert len(line.split(maxsplit=1)[1]) > 20, line
        result = run_cli(name, "--help")
        assert result.returncode == 0 and f"usage: bybit-dcp-exporter {name}" in result.stdout


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
    result = run_cli(
        "--check-config", env={"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET": SECRET, "BYBIT_ENV": "testnet"}
    )
    assert result.returncode == 0 and "default (testnet, observer)" in result.stdout


# ---------------------------------------------------------------- the exporter as a process


def test_address_in_use_exits_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "BYBIT_API_KEY": "KEY12345",
            "BYBIT_API_SECRET": SECRET,
            "BYBIT_REST_URL": "http://127.0.0.1:9",
            "BYBIT_WS_URL": "ws://127.0.0.1:9/v5/private",
        }
        result = run_cli("--web.listen-address", f"127.0.0.1:{port}", env=env)
    assert result.returncode == 1
    assert "cannot listen on the web address" in result.stderr and SECRET not in result.stderr


def start_exporter(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=exporter_env(**env),
    )


def stop_exporter(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"exporter did not stop within {timeout} s:\n{err[-3000:]}") from None
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_shuts_down_cleanly(sig):
    from exporter.simulator import Simulator

    async with Simulator() as sim:
        acct = sim.add_account("proc-key")
        port = free_port()
        proc = start_exporter(
            "--web.listen-address",
            f"127.0.0.1:{port}",
            env={
                "BYBIT_API_KEY": "proc-key",
                "BYBIT_API_SECRET": acct.api_secret,
                "BYBIT_REST_URL": sim.rest_url,
                "BYBIT_WS_URL": sim.ws_url,
                "BYBIT_PING_INTERVAL": "1",
                "BYBIT_PONG_TIMEOUT": "0.5",
                "BYBIT_POLL_INTERVAL": "1",
            },
        )
        try:
            body = await asyncio.to_thread(
                wait_for_url,
                f"http://127.0.0.1:{port}/metrics",
                20,
                lambda b: (
                    parse_metrics(b).get(("bybit_dcp_ws_connected", frozenset({"account": "default"}.items()))) == 1
                ),
            )
            assert parse_metrics(body)[("bybit_dcp_up", frozenset({"account": "default"}.items()))] == 1
            await asyncio.to_thread(wait_for_url, f"http://127.0.0.1:{port}/readyz", 5)
        finally:
            code, err = await asyncio.to_thread(stop_exporter, proc, sig)
        assert code == 0, err[-3000:]
        assert "shutting down" in err
        assert acct.api_secret not in err


async def test_wrong_secret_process_keeps_serving_and_never_logs_the_secret():
    from exporter.simulator import Simulator

    wrong = "wrong-secret-for-the-process-4242"
    async with Simulator() as sim:
        sim.add_account("proc-key")
        port = free_port()
        proc = start_exporter(
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log.level",
            "debug",
            "--log.format",
            "json",
            env={
                "BYBIT_API_KEY": "proc-key",
                "BYBIT_API_SECRET": wrong,
                "BYBIT_REST_URL": sim.rest_url,
                "BYBIT_WS_URL": sim.ws_url,
                "BYBIT_POLL_INTERVAL": "0.5",
                "BYBIT_PING_INTERVAL": "1",
                "BYBIT_PONG_TIMEOUT": "0.5",
                "BYBIT_DESIRED_WINDOWS": "SPOT=10",
                "BYBIT_REASSERT": "enforce",
                "BYBIT_SETTLE_SECONDS": "10",
            },
        )
        key = (
            "bybit_dcp_api_errors_total",
            frozenset({"account": "default", "endpoint": "query_dcp_info", "code": "10004"}.items()),
        )
        try:
            body = await asyncio.to_thread(
                wait_for_url, f"http://127.0.0.1:{port}/metrics", 20, lambda b: parse_metrics(b).get(key, 0) >= 2
            )
            assert parse_metrics(body)[("bybit_dcp_up", frozenset({"account": "default"}.items()))] == 0
            page = await asyncio.to_thread(wait_for_url, f"http://127.0.0.1:{port}/", 5)
            assert wrong not in body and wrong not in page
        finally:
            code, err = await asyncio.to_thread(stop_exporter, proc)
        assert code == 0, err[-3000:]
        lines = err.strip().splitlines()
        assert any('"level": "debug"' in line for line in lines)  # debug really was on
        assert any("10004" in line for line in lines)
        assert not [line for line in lines if wrong in line]
        assert "proc-key" not in err  # the key's middle is masked too


def test_demo_serves_live_metrics():
    port = free_port()
    proc = start_exporter("--demo", "--web.listen-address", f"127.0.0.1:{port}", env={})
    try:
        body = wait_for_url(
            f"http://127.0.0.1:{port}/metrics",
            30,
            lambda b: (
                parse_metrics(b).get(("bybit_dcp_ws_ping_rtt_seconds_count", frozenset({"account": "demo"}.items())), 0)
                > 0
                and parse_metrics(b).get(("bybit_dcp_up", frozenset({"account": "demo"}.items()))) == 1
            ),
        )
        s = parse_metrics(body)
        assert s[("bybit_dcp_ws_connected", frozenset({"account": "demo"}.items()))] == 1
        assert s[("bybit_dcp_window_seconds", frozenset({"account": "demo", "product": "DERIVATIVES"}.items()))] == 10
        assert s[("bybit_dcp_desired_window_seconds", frozenset({"account": "demo", "product": "SPOT"}.items()))] == 10
        assert ("bybit_dcp_window_drift", frozenset({"account": "demo", "product": "SPOT"}.items())) in s
        page = wait_for_url(f"http://127.0.0.1:{port}/", 5)
        assert 'data-account="demo"' in page  # the status board's card
    finally:
        code, err = stop_exporter(proc)
    assert code == 0, err[-3000:]
    assert "demo" in err and f"127.0.0.1:{port}" in err


async def test_sighup_rereads_the_web_config_and_never_stops_the_exporter(tmp_path):
    """SIGHUP's default is to end the process (exit 129, no clean close): it is logged and re-reads the web config."""
    import urllib.request

    from exporter.simulator import Simulator

    web_yml = tmp_path / "web.yml"
    web_yml.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    async with Simulator() as sim:
        acct = sim.add_account("hup-key")
        port = free_port()
        proc = start_exporter(
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(web_yml),
            env={
                "BYBIT_API_KEY": "hup-key",
                "BYBIT_API_SECRET": acct.api_secret,
                "BYBIT_REST_URL": sim.rest_url,
                "BYBIT_WS_URL": sim.ws_url,
            },
        )
        try:
            await asyncio.to_thread(wait_for_url, f"http://127.0.0.1:{port}/healthz", 20)
            proc.send_signal(signal.SIGHUP)

            def frame_options() -> str | None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                    return resp.headers.get("X-Frame-Options")

            assert await asyncio.to_thread(frame_options) == "deny"  # still serving after the signal
            assert proc.poll() is None, "SIGHUP stopped the exporter"
        finally:
            code, err = await asyncio.to_thread(stop_exporter, proc)
        assert code == 0, err[-3000:]
        assert err.count("SIGHUP: re-reading the web config") == 1 and "web config reloaded" in err
        assert "shutting down" in err


def test_check_config_warns_about_a_secret_file_others_can_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o644)
    env = {"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET_FILE": str(secret)}
    result = run_cli("--check-config", env=env)
    assert result.returncode == 0, result.stderr
    assert "warning: BYBIT_API_SECRET_FILE: the secret file" in result.stderr and "every user" in result.stderr
    secret.chmod(0o400)
    result = run_cli("--check-config", env=env)
    assert result.returncode == 0 and "warning" not in result.stderr


def test_check_config_refuses_a_fifo_secret_at_once(tmp_path):
    import os

    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    result = run_cli(
        "--check-config", env={"BYBIT_API_KEY": "KEY12345", "BYBIT_API_SECRET_FILE": str(fifo)}, timeout=20
    )
    assert result.returncode == 2 and "BYBIT_API_SECRET_FILE" in result.stderr and "FIFO" in result.stderr
