"""Helpers shared by the test modules of every room (tests/unit, tests/sim, tests/e2e)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from hypothesis import settings
from prometheus_client.parser import text_string_to_metric_families

from exporter.bybit.pacing import ConnectionBudget
from exporter.bybit.rest import RestClient
from exporter.bybit.stream import PrivateStream, StreamConfig
from exporter.config import AccountConfig, GuardianLiveness
from exporter.http.pool import Transport
from exporter.metrics import Metrics
from exporter.monitor.rest_metrics import RestMetrics
from exporter.monitor.stream_metrics import StreamMetrics
from exporter.runtime.clock import Clock
from exporter.secrets import Secret

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = ROOT / "dashboards" / "bybit-dcp.json"


def examples(thorough: int) -> int:
    """How many examples a property test tries: ``thorough`` under the thorough profile (the
    full run), and the same share of it the loaded profile gives hypothesis' default of 100
    (tests/conftest.py registers both)."""
    return max(1, thorough * settings().max_examples // 100)


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` (sync or async) until it is truthy and return its value.

    Fails after ``timeout`` seconds: tests wait for a condition, bounded, never a fixed time.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


class ShiftedClock(Clock):
    """The real clock, but wall time comes from ``wall()``: a skewed, stepped or frozen system clock."""

    def __init__(self, wall) -> None:
        self._wall = wall

    def time(self) -> float:
        return self._wall()


# ------------------------------------------------------------------ processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exporter_env(**overrides: str) -> dict[str, str]:
    """The environment for an exporter subprocess: this one without any BYBIT_* variable, plus ``overrides``.

    A developer's shell may export BYBIT_API_SECRET_FILE, BYBIT_MODE and so on; they must not leak in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYBIT_")}
    env.update(overrides)
    return env


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Send ``sig`` to ``proc`` if it still runs, wait up to ``timeout`` s, kill it after that; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def wait_for_url(url: str, timeout: float, predicate=lambda body: True, process: subprocess.Popen | None = None) -> str:
    """GET ``url`` until it answers 200 and ``predicate(body)``; the body.

    Bounded by ``timeout``; fails at once when ``process`` (the server under test) has exited.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited with status {process.returncode} before {url} answered")
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


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH (promtool, prometheus, amtool ...); fails the test, not skips it, when absent."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: scripts/test installs it (or says how)")
    return path


# ------------------------------------------------------------------ /metrics


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics exposition, keyed by (sample name, frozenset of its label items).

    Look a series up by its full label set: ``values[("bybit_dcp_up", frozenset({"account": "a"}.items()))]``.
    """
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# ------------------------------------------------------------------ alert rules and the dashboard


def rule_files() -> list[Path]:
    """alerts/*.rules.yml, sorted."""
    return sorted((ROOT / "alerts").glob("*.rules.yml"))


def rule_groups() -> list[dict]:
    """The rule groups of every rule file, in file order."""
    return [group for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"]]


def load_dashboard() -> dict:
    """dashboards/bybit-dcp.json, parsed."""
    return json.loads(DASHBOARD_PATH.read_text())


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows included, each followed by the panels nested in it (a collapsed row's)."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY")


def without_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable but those the test sets next (the machine's own would decide otherwise)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def rest_client(
    session: aiohttp.ClientSession | Transport,
    base_url: str,
    metrics: Metrics,
    key: str,
    secret: str | Secret,
    **kw: Any,
) -> RestClient:
    """A REST client of account ``acct`` (unless ``account=`` says otherwise) on the testnet,
    with a 403 ban record of its own."""
    kw.setdefault("account", "acct")
    observer = RestMetrics(metrics, kw["account"], "testnet")
    return RestClient(
        session, environment="testnet", base_url=base_url, api_key=key, api_secret=secret, observer=observer, **kw
    )


def bare_stream(url: str, metrics: Metrics, account: str = "desk-a", **config: float) -> PrivateStream:
    """A private stream to ``url`` as key ``key`` (secret ``secret``) that drops its orders:
    for tests about the connection itself."""

    async def drop(*_: object) -> None:
        return None

    settings = StreamConfig(url, "key", Secret("secret"), ("order",), **config)  # type: ignore[arg-type]
    return PrivateStream(
        account,
        settings,
        StreamMetrics(metrics, account),
        on_orders=drop,
        rng=random.Random(1),
        budget=ConnectionBudget(),
    )


def prometheus_guardian(
    url: str, query: str = "bot_alive", *, key: str = "guard-key-0001", secret: str = "guard-secret-0001"
):
    """A guardian account whose bot's liveness is a Prometheus query at ``url``, with no Bybit to
    reach (its REST and stream URLs refuse): for tests of the liveness watcher alone."""
    return AccountConfig(
        name="bot",
        api_key=key,
        api_secret=Secret(secret),
        environment="custom",
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        mode="guardian",
        guardian_products=("DERIVATIVES",),
        guardian_liveness=GuardianLiveness("prometheus", 1.0, url=url, query=query),
    )
