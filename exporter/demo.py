"""``--demo``: the exporter against an embedded simulator playing a scripted hour.

No credentials and nothing leaves the machine: the simulator listens on 127.0.0.1 on a
free port and holds one account with resting orders; one observer account named ``demo``
watches it with short intervals and re-asserts its desired windows. The simulator plays
``simulator.scenario.TIMELINE`` over and over (60 minutes: healthy, a slow heartbeat and a
dropped connection, a window changed behind the exporter's back and put back, the stream
unreachable for three minutes, then a trading bot vanishing so that DCP fires), with healthy
stretches between, so the status page shows each of ok, degraded and down and the alerts
clear. ``docs/demo.md`` has the timeline and which metric families have data by when.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

from .config import AccountConfig, Config, build_config, parse_listen_address
from .secrets import Secret
from .simulator import Simulator
from .simulator.scenario import Scenario

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "demo"
DEMO_API_KEY = "demo-api-key"
DEMO_IDLE_CUTOFF = 30.0


def demo_config(*, listen_address: str, telemetry_path: str, log_level: str, log_format: str) -> Config:
    """The demo's configuration; its URLs are filled in once the simulator has a port."""
    account = AccountConfig(
        name=DEMO_ACCOUNT,
        api_key=DEMO_API_KEY,
        api_secret=Secret(secrets.token_hex(24)),
        environment="simulator",
        rest_url="http://127.0.0.1:0",
        ws_url="ws://127.0.0.1:0/v5/private",
        mode="observer",
        ping_interval=5.0,
        pong_timeout=2.5,
        poll_interval=10.0,
        desired_windows={"DERIVATIVES": 10, "SPOT": 10},
        # The scenario changes the SPOT window now and then; enforce puts it back.
        reassert="enforce",
        settle_seconds=10.0,
    )
    return build_config(
        [account],
        listen_address=listen_address,
        telemetry_path=telemetry_path,
        log_level=log_level,
        log_format=log_format,
    )


class DemoEnvironment:
    """Owns the in-process simulator and the scenario task for the demo's lifetime.

    ``start_minute`` starts the scenario's cycle part-way; ``scenario.jump`` moves it later
    (``docs/screenshots.py`` takes each state's picture that way)."""

    def __init__(self, *, start_minute: float = 0.0) -> None:
        self._stop = asyncio.Event()
        self._start_minute = start_minute
        self._sim: Simulator | None = None
        self.scenario: Scenario | None = None
        self._scenario: asyncio.Task[None] | None = None

    async def start(self, config: Config) -> Config:
        account = config.accounts[0]
        sim = Simulator(time_scale=1.0, idle_cutoff=DEMO_IDLE_CUTOFF)
        sim.add_account(account.api_key, account.api_secret.reveal(), name=account.name)
        await sim.start(host="127.0.0.1", port=0)
        self._sim = sim
        self.scenario = Scenario(sim, account.api_key, start_minute=self._start_minute)
        self._scenario = asyncio.create_task(self.scenario.run(self._stop), name="demo-scenario")
        self._scenario.add_done_callback(self._scenario_done)
        account = dataclasses.replace(account, rest_url=sim.rest_url, ws_url=sim.ws_url)
        host, port = parse_listen_address(config.listen_address)
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        web = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        log.info(
            "demo: simulated Bybit running; the exporter watches its account 'demo'",
            extra={
                "simulator": sim.rest_url,
                "metrics": f"{web}{config.telemetry_path}",
                "page": f"{web}/",
            },
        )
        return dataclasses.replace(config, accounts=[account])

    @staticmethod
    def _scenario_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("demo scenario stopped", exc_info=task.exception())

    async def stop(self) -> None:
        self._stop.set()
        if self._scenario is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._scenario), timeout=5.0)
            except Exception:  # TimeoutError included
                self._scenario.cancel()
                await asyncio.gather(self._scenario, return_exceptions=True)
        if self._sim is not None:
            await self._sim.stop()
