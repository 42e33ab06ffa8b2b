"""A real Prometheus and Alertmanager for the end-to-end tests, and the webhook receiver behind it.

One harness for tests/test_prometheus_e2e.py, test_guardian_e2e.py, test_guardian.py,
test_alertmanager.py and test_alert_matrix.py: rules generated from the mixin with a test _config (short `for`,
`keep_firing_for` and ranges, parameters rather than copies), Debian's `prometheus` and
`prometheus-alertmanager` on 127.0.0.1, the shipped alerts/alertmanager.yml with its receivers
pointed at a webhook receiver in the test's process. Every process started here is stopped by
the caller with helpers.stop_process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from helpers import ROOT, free_port, require_binary

sys.path.insert(0, str(ROOT / "mixin"))
import build  # mixin/build.py

AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
INTERVAL = 1.0  # Prometheus scrape and evaluation interval, seconds
JOB = "bybit-dcp"


def alert_rules(config: dict | None = None) -> dict[str, dict]:
    """The mixin's alerts by name, with ``config`` over its _config."""
    return {r["alert"]: r for g in build.rule_groups(config) for r in g["rules"] if "alert" in r}


def short_for(duration: str) -> dict:
    """A _config that sets every non-zero `for` of the mixin to ``duration`` (a fact stays `for: 0m`)."""
    rules = alert_rules().values()
    return {"forDurations": {r["alert"]: duration for r in rules if r["for"] not in ("0", "0s", "0m")}}


def write_rules(tmp: Path, config: dict, *, only: set[str] | None = None, name: str = "rules.yml") -> Path:
    """The mixin's rules with ``config`` over its _config (alerts limited to ``only``, if given)."""
    groups = build.rule_groups(config)
    if only is not None:
        groups = [
            {**g, "rules": [r for r in g["rules"] if r.get("alert") in only]}
            for g in groups
            if any(r.get("alert") in only for r in g["rules"])
        ]
    path = tmp / name
    path.write_text(build.dump_yaml({"groups": groups}))
    return path


def start_prometheus(
    tmp: Path,
    rules: Path,
    *,
    targets: list[str] = (),
    file_sd: Path | None = None,
    alertmanager: str | None = None,
    name: str = "prometheus",
) -> tuple[subprocess.Popen, str]:
    """Prometheus scraping ``targets`` (and the targets in ``file_sd``) as job JOB every INTERVAL.

    Alerts are sent again every INTERVAL (default 1m): an alert that fires before Prometheus
    has found its Alertmanager counts as sent, and would otherwise reach it a minute late.
    """
    scrape: dict = {"job_name": JOB, "static_configs": [{"targets": list(targets)}]}
    if file_sd is not None:
        scrape["file_sd_configs"] = [{"files": [str(file_sd)], "refresh_interval": "1s"}]
    config: dict = {
        "global": {k: f"{INTERVAL:g}s" for k in ("scrape_interval", "evaluation_interval", "scrape_timeout")},
        "rule_files": [str(rules)],
        "scrape_configs": [scrape],
    }
    if alertmanager is not None:
        targets_am = [alertmanager.removeprefix("http://")]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": targets_am}]}]}
    (tmp / f"{name}.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [require_binary("prometheus"), f"--config.file={tmp / f'{name}.yml'}", f"--storage.tsdb.path={tmp / name}"]
        + [f"--web.listen-address=127.0.0.1:{port}", f"--rules.alert.resend-delay={INTERVAL:g}s"],
        stdout=open(tmp / f"{name}.log", "wb"),
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    return proc, f"http://127.0.0.1:{port}"


async def prometheus_alerts(session: aiohttp.ClientSession, url: str) -> list[dict]:
    """Prometheus's pending and firing alerts ([] while it starts)."""
    try:
        async with session.get(f"{url}/api/v1/alerts") as resp:
            return (await resp.json())["data"]["alerts"] if resp.status == 200 else []
    except aiohttp.ClientError:
        return []


async def prometheus_query(session: aiohttp.ClientSession, url: str, expr: str) -> list:
    """An instant query's result ([] while Prometheus starts)."""
    try:
        async with session.get(f"{url}/api/v1/query", params={"query": expr}) as resp:
            return (await resp.json())["data"]["result"] if resp.status == 200 else []
    except aiohttp.ClientError:
        return []


class Receiver:
    """A webhook receiver on loopback: every notification Alertmanager posts, in order, each
    with ``received_at`` (time.monotonic())."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            self.notifications.append({"receiver": request.match_info["name"], "received_at": time.monotonic(), **body})
            return web.Response()

        app = web.Application()
        app.router.add_post("/{name}", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def alerts(self, name: str, status: str = "firing", **labels: str) -> list[tuple[str, dict]]:
        """(receiver, alert) of every notified alert ``name`` with ``status`` and ``labels``, in
        order; each alert carries its notification's ``received_at``."""
        return [
            (n["receiver"], {**a, "received_at": n["received_at"]})
            for n in self.notifications
            for a in n["alerts"]
            if a["labels"]["alertname"] == name
            and a["status"] == status
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]


def alertmanager_config(tmp: Path, receiver: Receiver, *, wait: str = "1s") -> Path:
    """The shipped config with the receivers pointed at ``receiver`` and the group timers short."""
    config = yaml.safe_load(AM_CONFIG.read_text())
    for entry in config["receivers"]:
        entry["webhook_configs"][0]["url"] = f"{receiver.url}/{entry['name']}"
    config["route"].update(group_wait=wait, group_interval=wait)
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_alertmanager(tmp: Path, config: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [require_binary("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={tmp / 'am'}"]
        + [f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=open(tmp / "alertmanager.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


async def am_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, "alertmanager exited"
    try:
        async with session.get(f"{url}/-/ready") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False
