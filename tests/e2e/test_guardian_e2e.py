"""Guardian liveness and scheduled drills, proven on a real Prometheus, and the guardian's fail-safe.

On 127.0.0.1 only: the simulator (in this process, DCP at 0.1x), the exporter as a subprocess
with two accounts (`bot`: guardian with http liveness, 1 s timeout; `drill`: an observer with a
drill every 3 s), and Debian's `prometheus` with the mixin's rules, every non-zero `for`
3 s (tests/support/alert_stack.py).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
import pytest
import yaml
from alert_stack import JOB, short_for, start_prometheus, write_rules
from helpers import eventually, exporter_env, free_port, iter_panels, load_dashboard, parse_metrics

from exporter.simulator import Simulator

BOT_KEY, BOT_SECRET, TOKEN = "e2e-bot-key-0001", "e2e-bot-secret-0001", "e2e-bot-token-0001"
DRILL_KEY, DRILL_SECRET = "e2e-drill-key-0001", "e2e-drill-secret-0001"
ROW = "Guardian liveness and DCP drills"
pytestmark = pytest.mark.timeout(120)


def exporter_config(sim: Simulator) -> dict:
    common = {
        "rest_url": sim.rest_url,
        "ws_url": sim.ws_url,
        "ping_interval": 1,
        "pong_timeout": 0.5,
        "poll_interval": 1,
    }
    return {
        "accounts": [
            {
                "name": "bot",
                "api_key": BOT_KEY,
                "api_secret_env": "BOT_SECRET",
                "mode": "guardian",
                "guardian_products": ["DERIVATIVES"],
                "guardian_liveness": {"http": {"token_env": "BOT_TOKEN"}, "timeout": 1},
                **common,
            },
            {
                "name": "drill",
                "api_key": DRILL_KEY,
                "api_secret_env": "DRILL_SECRET",
                "drill": {"every": 3, "tolerance": 1},
                **common,
            },
        ]
    }


async def test_guardian_let_go_and_dcp_fire_in_prometheus_and_a_killed_exporter_lets_dcp_fire(tmp_path, session):
    async with Simulator(time_scale=0.1) as sim:
        sim.add_account(BOT_KEY, BOT_SECRET, name="bot")
        sim.add_account(DRILL_KEY, DRILL_SECRET, name="drill")
        (tmp_path / "config.yml").write_text(yaml.safe_dump(exporter_config(sim)))
        port = free_port()
        env = exporter_env(BOT_SECRET=BOT_SECRET, DRILL_SECRET=DRILL_SECRET, BOT_TOKEN=TOKEN)
        log = open(tmp_path / "exporter.log", "wb")
        exporter = subprocess.Popen(
            [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())"]
            + ["--config.file", str(tmp_path / "config.yml"), "--web.listen-address", f"127.0.0.1:{port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        rules = write_rules(tmp_path, short_for("3s"))
        prom, prom_url = start_prometheus(tmp_path, rules, targets=[f"127.0.0.1:{port}"])
        exporter_url = f"http://127.0.0.1:{port}"
        liveness = f"{exporter_url}/api/v1/accounts/bot/liveness"
        try:

            async def sample(name: str, **labels: str) -> float | None:
                try:
                    async with session.get(f"{exporter_url}/metrics") as resp:
                        return parse_metrics(await resp.text()).get((name, frozenset(labels.items())))
                except aiohttp.ClientError:
                    return None

            async def alerts(name: str) -> list[dict]:
                async with session.get(f"{prom_url}/api/v1/alerts") as resp:
                    body = await resp.json()
                return [
                    a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name and a["state"] == "firing"
                ]

            async def bot(seconds: float) -> None:
                for _ in range(int(seconds / 0.2)):
                    async with session.post(liveness, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                        assert resp.status == 204
                    await asyncio.sleep(0.2)

            armed = {"account": "bot", "product": "DERIVATIVES"}

            async def exporter_up() -> bool:
                assert exporter.poll() is None, (tmp_path / "exporter.log").read_text()[-2000:]
                return await sample("bybit_dcp_guardian_armed", **armed) == 0  # up, and disarmed

            await eventually(exporter_up, timeout=30, what="the exporter, its guardian disarmed")
            sim.place_order(BOT_KEY, category="linear")
            await bot(0.6)  # arms
            await eventually(lambda: sample("bybit_dcp_guardian_armed", **armed), what="armed")
            # The bot stops: the guardian lets go, DCP fires after the window, both alerts fire.
            await eventually(
                lambda: sample("bybit_dcp_triggers_total", **armed), timeout=10, what="the trigger to be counted"
            )
            (let_go,) = await eventually(lambda: alerts("BybitDcpGuardianLetGo"), timeout=30, what="let-go alert")
            assert let_go["labels"]["severity"] == "critical" and let_go["labels"]["account"] == "bot"
            await eventually(lambda: alerts("BybitDcpTriggered"), timeout=10, what="BybitDcpTriggered")

            # The drill account passes its scheduled drills; every panel of the row has data.
            drill = {"account": "drill", "product": "DERIVATIVES"}
            await eventually(lambda: sample("bybit_dcp_drill_last_success", **drill), timeout=20, what="a drill")

            async def row_has_data() -> bool:
                for panel in [p for p in iter_panels(load_dashboard()) if "guardian" in str(p) or "drill" in str(p)]:
                    for target in panel.get("targets", []):
                        expr = target["expr"].replace("$__rate_interval", "4s").replace("$job", JOB)
                        expr = expr.replace("$account", ".*")
                        async with session.get(f"{prom_url}/api/v1/query", params={"query": expr}) as resp:
                            if not (await resp.json())["data"]["result"]:
                                return False
                return True

            await eventually(row_has_data, timeout=20, interval=0.5, what=f"the {ROW!r} panels to have data")

            # Fail-safe: the bot is back and the guardian armed, then the exporter dies hard.
            order = sim.place_order(BOT_KEY, category="linear")
            await bot(0.6)
            await eventually(lambda: sample("bybit_dcp_guardian_armed", **armed), what="re-armed")
            exporter.send_signal(signal.SIGKILL)
            exporter.wait(timeout=10)
            await eventually(
                lambda: sim.account(BOT_KEY).orders[order["orderId"]]["orderStatus"] == "Cancelled",
                timeout=5,
                what="DCP to fire after the exporter died",
            )
        finally:
            for proc in (prom, exporter):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=10)
