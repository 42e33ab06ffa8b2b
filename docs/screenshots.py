"""Screenshots of the demo's status page, one per state, for docs/demo.md.

    python3 docs/screenshots.py            # writes docs/demo-{healthy,degraded,down,triggered}.png

Runs the demo in this process on loopback (the simulator and the exporter, as ``--demo``
does), twice: from minute 0 (the first minute, then a jump to just before the slow
heartbeat, then to the drift) and from minute 18 in real time through the outage, the way
back and the trigger. For each phase with a screenshot (``TIMELINE``'s ``shot``) it waits
until the page shows that phase's state; Debian's headless chromium takes the picture. It
also prints which metric families had a sample after the first minute and later
(docs/demo.md lists them). About ten minutes; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from exporter.cli import run_exporter  # noqa: E402
from exporter.demo import DemoEnvironment, demo_config  # noqa: E402
from exporter.simulator.scenario import TIMELINE, Phase  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars")
# What the page must say besides the state, so each picture shows its phase and not a neighbour's
# (a trigger's orders are told once the sampler has seen it: the picture then has its event too).
SAYS = {"degraded": "RTT p90", "down": "stream disconnected", "triggered": "orders cancelled"}
SETTLE = {"down": 20.0}  # seconds more, so the picture shows the gap grown past its limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        name = name.removesuffix(suffix)
    return name


def families_with_data(metrics: str) -> set[str]:
    """The ``bybit_dcp_`` families with at least one sample in a text exposition."""
    return {
        family(line.split("{", 1)[0].split(" ", 1)[0]) for line in metrics.splitlines() if line.startswith("bybit_")
    }


def declared(metrics: str) -> set[str]:
    return {family(line.split()[2]) for line in metrics.splitlines() if line.startswith("# TYPE bybit_dcp_")}


async def until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        await asyncio.sleep(1.0)


async def shoot(url: str, path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={path}",
            "--window-size=1100,1250",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(proc.wait(), timeout=60)


class Demo:
    """The demo in this process, its scenario started at ``start_minute``."""

    def __init__(self, start_minute: float) -> None:
        self.start_minute = start_minute
        self.port = free_port()
        self.web = f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Demo:
        config = demo_config(
            listen_address=f"127.0.0.1:{self.port}", telemetry_path="/metrics", log_level="error", log_format="logfmt"
        )
        self.env = DemoEnvironment(start_minute=self.start_minute)
        config = await self.env.start(config)
        self.stop = asyncio.Event()
        self.exporter = asyncio.create_task(run_exporter(config, self.stop))
        self.started = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.exporter, timeout=30)
        await self.env.stop()

    def account(self) -> dict:
        return json.loads(get(f"{self.web}/api/v1/status"))["accounts"][0]

    def shows(self, state: str, says: str) -> bool:
        try:
            a = self.account()
        except OSError:
            return False
        return a["state"] == state and says in " ".join(r["text"] for r in a["reasons"])

    async def families(self) -> set[str]:
        return families_with_data(await asyncio.to_thread(get, f"{self.web}/metrics"))

    async def shoot(self, phase: Phase) -> None:
        says = SAYS.get(phase.shot, "")
        await until(f"{phase.shot}: {phase.state}", lambda: self.shows(phase.state, says), 420)
        await asyncio.sleep(SETTLE.get(phase.shot, 3.0))
        await shoot(f"{self.web}/", DOCS / f"demo-{phase.shot}.png")
        shown = await asyncio.to_thread(self.account)
        print(
            f"docs/demo-{phase.shot}.png at minute {self.env.scenario.minute():.1f}: {shown['state']}: "
            f"{'; '.join(r['text'] for r in shown['reasons'])}"
        )


def phase(name: str) -> Phase:
    return next(p for p in TIMELINE if p.name == name)


async def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    seen: set[str] = set()
    # Healthy, the first minute, then the slow heartbeat a minute after the healthy one before it.
    async with Demo(0.0) as demo:
        await until("the first minute", lambda: time.monotonic() - demo.started >= 60, 90)
        first = await demo.families()
        await demo.shoot(phase("healthy"))
        demo.env.scenario.jump(phase("slow heartbeat").start - 0.5)
        await demo.shoot(phase("slow heartbeat"))
        demo.env.scenario.jump(phase("drift").start - 0.1)  # measured, not pictured: a re-assertion
        await until("the re-assertion", lambda: "re-asserted" in json.dumps(demo.account()["products"]), 120)
        seen |= await demo.families()
    # From a healthy minute before the outage through it, the way back and the trigger, in real time.
    async with Demo(phase("down").start - 1.0) as demo:
        await demo.shoot(phase("down"))
        await demo.shoot(phase("triggered"))
        seen |= await demo.families()
        metrics = await asyncio.to_thread(get, f"{demo.web}/metrics")
    print(f"with a sample after the first minute ({len(first)}):", ", ".join(sorted(first)))
    print(f"first sampled later ({len(seen - first)}):", ", ".join(sorted(seen - first)))
    never = declared(metrics) - seen - first
    print(f"no sample in any phase ({len(never)}):", ", ".join(sorted(never)))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
