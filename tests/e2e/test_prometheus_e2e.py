"""The alert rules and the dashboard, proven on a real Prometheus.

Each test starts, on 127.0.0.1 only:
  the simulator (in this process; DCP timers at 0.1x, so Bybit's 10 s window lasts 1 s),
  the exporter (`bybit-dcp-exporter` as a subprocess, 1 s ping and poll intervals),
  Debian's `prometheus` binary (scrape and evaluation interval 1 s) loading the mixin's rules
  (tests/support/alert_stack.py).

In those rules every non-zero `for:` is FOR_IN_TESTS so an alert goes pending then firing in
seconds rather than minutes; nothing else changes (expressions, thresholds, ranges, labels,
annotations). BybitDcpTriggered has `for: 0m` and is tested exactly as shipped.
All processes started here are terminated when the test ends.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from alert_stack import INTERVAL, JOB, short_for, start_prometheus, write_rules
from helpers import (
    eventually,
    exporter_env,
    free_port,
    iter_panels,
    load_dashboard,
    parse_metrics,
    stop_process,
)

from exporter.simulator import Simulator
from exporter.simulator.scenario import protected_session

DASHBOARD = load_dashboard()

API_KEY = "e2e-test-key-0001"
API_SECRET = "e2e-test-secret-0001"
ACCOUNT = "desk"
FOR_IN_TESTS = "3s"
# What Grafana substitutes for $__rate_interval with a 1 s scrape interval: max(4 x scrape, step + scrape).
RATE_INTERVAL = "4s"

pytestmark = pytest.mark.timeout(180)


# ------------------------------------------------------------------ plumbing


class Stack:
    def __init__(self, sim: Simulator, http: aiohttp.ClientSession, exporter_url: str, prom_url: str, logs: Path):
        self.sim, self.http, self.exporter_url, self.prom_url, self.logs = sim, http, exporter_url, prom_url, logs

    async def exporter_value(self, name: str, **labels: str) -> float | None:
        """The exporter's sample ``name`` with exactly the labels account=ACCOUNT plus ``labels``."""
        async with self.http.get(f"{self.exporter_url}/metrics") as resp:
            text = await resp.text()
        return parse_metrics(text).get((name, frozenset({"account": ACCOUNT, **labels}.items())))

    async def api(self, path: str, **params) -> dict:
        async with self.http.get(f"{self.prom_url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list:
        return (await self.api("query", query=expr))["result"]

    async def alerts(self, name: str, **labels: str) -> list[dict]:
        return [
            a
            for a in (await self.api("alerts"))["alerts"]
            if a["labels"].get("alertname") == name and all(a["labels"].get(k) == v for k, v in labels.items())
        ]


@pytest.fixture
async def stack(tmp_path):
    sim = Simulator(time_scale=0.1, settle_delay=0.0)
    await sim.start(host="127.0.0.1", port=0)
    sim.add_account(API_KEY, API_SECRET, name=ACCOUNT)  # DERIVATIVES and SPOT on, 10 s windows
    procs: list[subprocess.Popen] = []
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    try:
        exporter_port = free_port()
        # Only the variables below: none of the developer's BYBIT_* settings (a secret file, a mode).
        env = exporter_env(
            BYBIT_API_KEY=API_KEY,
            BYBIT_API_SECRET=API_SECRET,
            BYBIT_ACCOUNT=ACCOUNT,
            BYBIT_REST_URL=sim.rest_url,
            BYBIT_WS_URL=sim.ws_url,
            BYBIT_PING_INTERVAL="1",
            BYBIT_PONG_TIMEOUT="0.5",
            BYBIT_POLL_INTERVAL="1",
            BYBIT_DESIRED_WINDOWS="DERIVATIVES=10,SPOT=10",
            BYBIT_REASSERT="enforce",  # a drifted window is put back (the re-asserted annotation)
        )
        exporter_log = open(tmp_path / "exporter.log", "wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from exporter.cli import main; sys.exit(main())",
                    "--web.listen-address",
                    f"127.0.0.1:{exporter_port}",
                ],
                env=env,
                stdout=exporter_log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        )
        exporter_url = f"http://127.0.0.1:{exporter_port}"

        prom, prom_url = start_prometheus(
            tmp_path, write_rules(tmp_path, short_for(FOR_IN_TESTS)), targets=[f"127.0.0.1:{exporter_port}"]
        )
        procs.append(prom)
        stk = Stack(sim, http, exporter_url, prom_url, tmp_path)

        async def exporter_ready():
            for proc in procs:
                assert proc.poll() is None, (
                    f"process exited; logs in {tmp_path}: "
                    + (tmp_path / "exporter.log").read_text()[-2000:]
                    + (tmp_path / "prometheus.log").read_text()[-2000:]
                )
            try:
                return await stk.exporter_value("bybit_dcp_ws_connected") == 1.0
            except aiohttp.ClientError:
                return False

        await eventually(exporter_ready, timeout=30, interval=0.1, what="the exporter's stream to connect")

        async def scraped():
            try:
                return await stk.query(f'bybit_dcp_ws_connected{{job="{JOB}",account="{ACCOUNT}"}} == 1')
            except aiohttp.ClientError:
                return False

        await eventually(scraped, timeout=30, interval=0.1, what="Prometheus to scrape the exporter")
        yield stk
    finally:
        await http.close()
        for proc in reversed(procs):
            stop_process(proc)
        await sim.stop()


async def _trigger_dcp(stk: Stack) -> None:
    """Be a bot: rest orders on the book, hold the only dcp.future/dcp.spot connection, vanish."""
    stk.sim.place_order(API_KEY, category="linear", price="60000")
    stk.sim.place_order(API_KEY, category="linear", price="60001")
    stk.sim.place_order(API_KEY, category="spot", price="60000")
    assert await protected_session(stk.sim, API_KEY, topics=("dcp.future", "dcp.spot"), hold=0.5)


# ------------------------------------------------------------------ the tests


async def test_dcp_trigger_fires_the_alert_within_two_evaluations(stack):
    await _trigger_dcp(stack)

    async def counted():
        return await stack.exporter_value("bybit_dcp_triggers_total", product="DERIVATIVES") == 1.0

    # The simulator fires 1 s (10 s x 0.1) after the bot vanished; the exporter sees the pushes.
    await eventually(counted, timeout=15, interval=0.1, what="the exporter to count the DERIVATIVES trigger")
    exposed_at = time.monotonic()

    async def firing():
        alerts = await stack.alerts("BybitDcpTriggered", account=ACCOUNT, product="DERIVATIVES")
        return [a for a in alerts if a["state"] == "firing"]

    # for: 0m as shipped; one interval for the scrape to store it, one for the rule to see it,
    # plus 1 s of slack for process scheduling on a busy machine.
    (alert,) = await eventually(firing, timeout=2 * INTERVAL + 1.0, interval=0.05, what="BybitDcpTriggered to fire")
    assert time.monotonic() - exposed_at <= 2 * INTERVAL + 1.0
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == JOB
    assert "desk for DERIVATIVES" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("runbook.md#bybitdcptriggered")
    # Nothing was cancelled on OPTIONS, so no alert there.
    assert not await stack.alerts("BybitDcpTriggered", account=ACCOUNT, product="OPTIONS")


async def test_silent_stall_makes_heartbeat_alert_pending_then_firing(stack):
    # Healthy first: no heartbeat or stream alert.
    assert not await stack.alerts("BybitDcpHeartbeatGapHigh", account=ACCOUNT)
    assert not await stack.alerts("BybitDcpStreamDisconnected", account=ACCOUNT)

    # A silent stall: the live connection stops answering but stays open. The simulator's
    # stall spares connections opened later, and the exporter heals a one-off stall by
    # reconnecting after its pong timeout (a blip: no alert). Keep the account silent across
    # reconnects by also dropping the pongs of new connections, so the heartbeat stays dead.
    stack.sim.stall(API_KEY, True)
    stack.sim.drop_pongs(API_KEY, True)
    states: list[str] = []

    async def firing():
        alerts = await stack.alerts("BybitDcpHeartbeatGapHigh", account=ACCOUNT, product="DERIVATIVES")
        if alerts and (not states or states[-1] != alerts[0]["state"]):
            states.append(alerts[0]["state"])
        return "firing" in states

    # Overdue reaches half the 10 s window 6 s after the last pong (1 s ping interval), then
    # the shortened `for`: pending, then firing.
    await eventually(firing, timeout=40, interval=0.1, what="BybitDcpHeartbeatGapHigh to fire during the stall")
    assert states[:2] == ["pending", "firing"], states

    async def critical():
        alerts = await stack.alerts("BybitDcpHeartbeatGapCritical", account=ACCOUNT, product="DERIVATIVES")
        return [a for a in alerts if a["state"] == "firing"]

    (alert,) = await eventually(critical, timeout=20, interval=0.1, what="BybitDcpHeartbeatGapCritical to fire")
    assert alert["labels"]["severity"] == "critical"
    assert "heartbeat of account desk is overdue" in alert["annotations"]["description"]


def _fill_variables(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", JOB).replace("$account", ACCOUNT)


# Series only a guardian-liveness or drilling account has; tests/test_guardian_e2e.py shows their panels with data.
OTHER_STACK_SERIES = ("bybit_dcp_guardian_", "bybit_dcp_drill_")


def _panel_targets() -> list[tuple[str, dict]]:
    out = []
    for panel in iter_panels(DASHBOARD):
        for target in panel.get("targets", []):
            if any(series in target["expr"] for series in OTHER_STACK_SERIES):
                continue
            out.append((f"{panel['title']} [{target['refId']}]", target))
    for annotation in DASHBOARD["annotations"]["list"]:
        if annotation.get("expr"):
            out.append((f"annotation {annotation['name']}", {"expr": annotation["expr"], "instant": False}))
    return out


async def test_every_dashboard_query_returns_data(stack):
    """Make every panel have something to show, then run each query as Grafana would."""
    started = time.time()
    # A trigger (triggers, cancelled orders, last-trigger time), a reconnect, three API errors
    # (an error series is created at its first error, so increase() needs a second one).
    # And a window changed behind the exporter's back, put back and verified after Bybit's 10 s.
    stack.sim.set_dcp(API_KEY, "SPOT", 30)
    await _trigger_dcp(stack)
    stack.sim.close_connections(API_KEY)
    stack.sim.force_error("/v5/account/query-dcp-info", 10016, count=3)

    async def events_seen():
        return (
            await stack.exporter_value("bybit_dcp_triggers_total", product="DERIVATIVES") == 1.0
            and (await stack.exporter_value("bybit_dcp_ws_reconnects_total", reason="closed") or 0) >= 1
            and (await stack.exporter_value("bybit_dcp_api_errors_total", endpoint="query_dcp_info", code="10016") or 0)
            >= 3
            and await stack.exporter_value("bybit_dcp_ws_connected") == 1.0
            and await stack.exporter_value("bybit_dcp_reassert_last_success_timestamp_seconds", product="SPOT")
        )

    await eventually(
        events_seen, timeout=30, interval=0.1, what="trigger, reconnect and API errors to show on /metrics"
    )

    # Prometheus has yet to scrape the last of them and evaluate the recording rules on it: run
    # every query, up to the time of each try, until all have data or `patience` runs out; then
    # report the ones still empty.
    patience = 15 * INTERVAL
    give_up_at = time.monotonic() + patience
    empty: list[str] = []

    async def every_query_has_data_or_patience_is_out() -> bool:
        end = time.time()
        empty.clear()
        for title, target in _panel_targets():
            expr = _fill_variables(target["expr"])
            if target.get("instant"):
                result = await stack.query(expr)
            else:
                data = await stack.api(
                    "query_range", query=expr, start=f"{started - 5:.3f}", end=f"{end:.3f}", step="1"
                )
                result = data["result"]
            if not result:
                empty.append(f"{title}: {expr}")
        return not empty or time.monotonic() >= give_up_at

    await eventually(
        every_query_has_data_or_patience_is_out,
        timeout=patience + 10,
        interval=INTERVAL / 2,
        what="the dashboard queries to run",
    )
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

    # The template variables: label_values(<series>, <label>) is Grafana's; ask Prometheus the same.
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
        values = await stack.api(f"label/{m.group(2)}/values", **{"match[]": _fill_variables(m.group(1))})
        assert {JOB, ACCOUNT} & set(values), (variable["name"], values)
