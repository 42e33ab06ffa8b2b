"""alerts/alertmanager.yml: checked by amtool, its routes and inhibitions proven on a real
Alertmanager, and every DCP trigger paging and every re-assertion reaching the chat, proven end to end.

On 127.0.0.1 only: Debian's `prometheus-alertmanager` and `amtool`, Debian's `prometheus`
with the mixin's rules (every non-zero `for` 3 s; tests/support/alert_stack.py),
the exporter as a subprocess, the simulator in this process (DCP at 0.1x) and a webhook
receiver in this process standing in for the pager, the ticket system and the chat.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest
import yaml
from alert_stack import (
    AM_CONFIG,
    JOB,
    Receiver,
    alertmanager_config,
    am_ready,
    short_for,
    start_alertmanager,
    start_prometheus,
    write_rules,
)
from helpers import eventually, exporter_env, free_port, require_binary, rule_groups, stop_process

from exporter.simulator import Simulator
from exporter.simulator.scenario import protected_session

CONFIG = AM_CONFIG
ALERTS = {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}
RECEIVER_OF = {"critical": "page", "warning": "ticket", "info": "chat"}
KEY, SECRET = "am-e2e-key-0001", "am-e2e-secret-0001"
NEW_FOR = "10s"  # how long a trigger series counts as new in these rules (triggerNewFor)
pytestmark = pytest.mark.timeout(240)


def amtool(*args: str) -> str:
    result = subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_config_is_valid():
    assert "SUCCESS" in amtool("check-config", str(CONFIG))


@pytest.mark.parametrize("alert", sorted(ALERTS), ids=sorted(ALERTS))
def test_every_alert_routes_by_its_severity(alert):
    """critical -> page, warning -> ticket, info -> chat, for each alert the rules define."""
    labels = {"alertname": alert, "account": "desk", **ALERTS[alert]["labels"]}
    receiver = RECEIVER_OF[labels["severity"]]
    amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )  # fmt: skip


# ------------------------------------------------------------------ a real Alertmanager


async def test_exporter_down_inhibits_the_other_alerts_of_its_target(tmp_path, session):
    async with Receiver() as receiver:
        proc, url = start_alertmanager(tmp_path, alertmanager_config(tmp_path, receiver))
        try:
            await eventually(lambda: am_ready(session, url, proc), timeout=20, what="alertmanager")
            target = {"job": JOB, "instance": "10.0.0.1:9842"}
            alerts = [
                {"labels": {"alertname": "BybitDcpExporterDown", "severity": "critical", **target}},
                {"labels": {"alertname": "BybitDcpStreamDisconnected", "severity": "warning", "account": "a", **target}},
                {"labels": {"alertname": "BybitDcpStreamDisconnected", "severity": "warning", "account": "b"}
                 | {"job": JOB, "instance": "10.0.0.2:9842"}},
            ]  # fmt: skip
            async with session.post(f"{url}/api/v2/alerts", json=alerts) as resp:
                assert resp.status == 200

            async def states() -> dict:
                async with session.get(f"{url}/api/v2/alerts") as resp:
                    body = await resp.json()
                return {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"] for a in body}

            got = await eventually(lambda: _all_three(states), timeout=10, what="the three alerts")
            assert got[("BybitDcpStreamDisconnected", "10.0.0.1:9842")]["state"] == "suppressed"
            assert got[("BybitDcpStreamDisconnected", "10.0.0.1:9842")]["inhibitedBy"]
            assert got[("BybitDcpStreamDisconnected", "10.0.0.2:9842")]["state"] == "active"  # another target
            assert got[("BybitDcpExporterDown", "10.0.0.1:9842")]["state"] == "active"
            await eventually(lambda: receiver.alerts("BybitDcpStreamDisconnected"), what="a ticket")
            await eventually(lambda: receiver.alerts("BybitDcpExporterDown"), what="a page")
            assert {a["labels"]["instance"] for _, a in receiver.alerts("BybitDcpStreamDisconnected")} == {
                "10.0.0.2:9842"
            }
            assert {r for r, _ in receiver.alerts("BybitDcpExporterDown")} == {"page"}
        finally:
            stop_process(proc)


async def _all_three(states) -> dict | None:
    got = await states()
    return got if len(got) == 3 else None


# ------------------------------------------------------------------ every trigger pages


async def test_two_dcp_triggers_in_a_row_are_two_pages(tmp_path, session):
    """A bot crash-loops: DCP fires, and fires again once the first trigger is no longer new
    (its alert held only by keep_firing_for). Two notifications reach the pager, one per
    trigger, each with its labels and text. A trigger counts as new for 10 s here (1 m as
    shipped), so the wait is for that moment, seen in Prometheus, not a fixed sleep."""
    async with Simulator(time_scale=0.1) as sim, Receiver() as receiver:
        sim.add_account(KEY, SECRET, name="desk")
        am, am_url = start_alertmanager(tmp_path, alertmanager_config(tmp_path, receiver))
        port = free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())"]
            + ["--web.listen-address", f"127.0.0.1:{port}"],
            env=exporter_env(
                BYBIT_API_KEY=KEY,
                BYBIT_API_SECRET=SECRET,
                BYBIT_ACCOUNT="desk",
                BYBIT_REST_URL=sim.rest_url,
                BYBIT_WS_URL=sim.ws_url,
                BYBIT_PING_INTERVAL="1",
                BYBIT_PONG_TIMEOUT="0.5",
                BYBIT_POLL_INTERVAL="1",
            ),
            stdout=open(tmp_path / "exporter.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        rules = write_rules(tmp_path, {**short_for("3s"), "triggerNewFor": NEW_FOR})
        prom, prom_url = start_prometheus(tmp_path, rules, targets=[f"127.0.0.1:{port}"], alertmanager=am_url)
        try:
            await eventually(lambda: am_ready(session, am_url, am), timeout=20, what="alertmanager")

            async def connected() -> bool:
                assert exporter.poll() is None, (tmp_path / "exporter.log").read_text()[-2000:]
                query = {"query": "bybit_dcp_ws_connected == 1"}
                try:
                    async with session.get(f"{prom_url}/api/v1/query", params=query) as resp:
                        return resp.status == 200 and bool((await resp.json())["data"]["result"])
                except aiohttp.ClientError:
                    return False  # Prometheus still starting

            await eventually(connected, timeout=40, interval=0.2, what="Prometheus to see the exporter connected")

            async def trigger() -> float:
                sim.place_order(KEY, category="linear", price="60000")
                fired = len(sim.account(KEY).triggers)
                await protected_session(sim, KEY, topics=("dcp.future",), hold=0.2)
                await eventually(lambda: len(sim.account(KEY).triggers) > fired, timeout=10, what="DCP to fire")
                return asyncio.get_running_loop().time()

            first = await trigger()
            (page1,) = await eventually(lambda: receiver.alerts("BybitDcpTriggered"), timeout=20, what="the first page")
            took_first = asyncio.get_running_loop().time() - first

            async def first_no_longer_new() -> bool:
                query = {"query": f"bybit_dcp_trigger_info unless bybit_dcp_trigger_info offset {NEW_FOR}"}
                async with session.get(f"{prom_url}/api/v1/query", params=query) as resp:
                    return resp.status == 200 and not (await resp.json())["data"]["result"]

            await eventually(first_no_longer_new, timeout=40, interval=0.5, what="the first trigger to be old")
            second = await trigger()
            pages = await eventually(
                lambda: (
                    len({a["labels"]["trigger"] for _, a in receiver.alerts("BybitDcpTriggered")}) == 2
                    and receiver.alerts("BybitDcpTriggered")
                ),
                timeout=20,
                what="the second page",
            )
            took_second = asyncio.get_running_loop().time() - second
            receivers = {r for r, _ in pages}
            assert receivers == {"page"}
            for _, alert in pages:
                labels = alert["labels"]
                assert labels["account"] == "desk" and labels["product"] == "DERIVATIVES"
                assert labels["severity"] == "critical" and labels["job"] == JOB
                assert labels["trigger"] in alert["annotations"]["description"]
                assert alert["annotations"]["runbook_url"].endswith("#bybitdcptriggered")
            # The first alert still fired when the second paged, held by keep_firing_for (30m).
            async with session.get(f"{am_url}/api/v2/alerts") as resp:
                active = [a for a in await resp.json() if a["labels"]["alertname"] == "BybitDcpTriggered"]
            assert len(active) == 2
            print(f"trigger -> page: {took_first:.1f} s, then {took_second:.1f} s")
        finally:
            for proc in (prom, exporter, am):
                stop_process(proc)


# ------------------------------------------------------------------ every re-assertion notifies


async def test_two_reassertions_seconds_apart_are_two_notifications(tmp_path, session):
    """Someone sets the SPOT window to 30 s, the exporter (enforce) puts back 10 s; someone does it
    again a few seconds later, well inside the 15 minutes the first alert is shown. Two
    notifications reach the chat, one per re-assertion (label reassertion), not one alert still firing."""
    async with Simulator(time_scale=0.1) as sim, Receiver() as receiver:
        sim.add_account(KEY, SECRET, name="desk")
        am, am_url = start_alertmanager(tmp_path, alertmanager_config(tmp_path, receiver))
        port = free_port()
        config = tmp_path / "config.yml"
        account = {
            "name": "desk",
            "api_key": KEY,
            "api_secret_env": "DESK_SECRET",
            "rest_url": sim.rest_url,
            "ws_url": sim.ws_url,
            "poll_interval": 1,
            "desired_windows": {"SPOT": 10},
            "reassert": "enforce",
            "settle_seconds": 1,
            "allow_short_settle": True,
        }
        config.write_text(yaml.safe_dump({"accounts": [account]}))
        exporter = subprocess.Popen(
            [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())"]
            + ["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"],
            env=exporter_env(DESK_SECRET=SECRET),
            stdout=open(tmp_path / "exporter.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        rules = write_rules(tmp_path, short_for("3s"))
        prom, prom_url = start_prometheus(tmp_path, rules, targets=[f"127.0.0.1:{port}"], alertmanager=am_url)
        try:
            await eventually(lambda: am_ready(session, am_url, am), timeout=20, what="alertmanager")

            def reassertions() -> set[str]:
                assert exporter.poll() is None, (tmp_path / "exporter.log").read_text()[-2000:]
                return {a["labels"].get("reassertion", "") for _, a in receiver.alerts("BybitDcpWindowReasserted")}

            async def change_the_window_behind_the_desk() -> None:
                await eventually(lambda: sim.account(KEY).dcp.get("SPOT") == 10, timeout=30, what="SPOT at 10 s")
                sim.set_dcp(KEY, "SPOT", 30)
                await eventually(lambda: sim.account(KEY).dcp.get("SPOT") == 10, timeout=30, what="put back")

            await change_the_window_behind_the_desk()
            await eventually(lambda: len(reassertions()) == 1, timeout=60, interval=0.2, what="the first notification")
            await change_the_window_behind_the_desk()
            await eventually(lambda: len(reassertions()) == 2, timeout=60, interval=0.2, what="the second notification")
            notified = receiver.alerts("BybitDcpWindowReasserted")
            assert {r for r, _ in notified} == {"chat"}
            for _, alert in notified:
                labels = alert["labels"]
                assert labels["account"] == "desk" and labels["product"] == "SPOT" and labels["severity"] == "info"
                assert "<no value>" not in alert["annotations"]["description"]
        finally:
            for proc in (prom, exporter, am):
                stop_process(proc)
