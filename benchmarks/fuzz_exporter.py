"""100,000 hostile inputs against a live exporter: counts of inputs tried, crashes and stuck states.

One exporter (fleet + web app) watches one account of the simulator over loopback. The run
sends mutated frames (tests/support/mutations.py) down its private stream and mutated answers to its
REST polls and backfills, scraping /metrics every few hundred inputs, then checks it recovers.

- crash: a log record at ERROR or above (a part that failed, a callback that raised);
- stuck: after the inputs stop, the account is not up and connected again within 30 s, or a
  /metrics scrape failed or took over 5 s.

    python3 benchmarks/fuzz_exporter.py [--inputs 100000] [--rest-share 0.1] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from mutations import mutate

from exporter.bybit.rest import ORDER_HISTORY, QUERY_DCP_INFO
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.web.app import make_app

KEY = "fuzz-key"


class Crashes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The exporter's records only: the simulator and aiohttp's server side are not under test.
        if record.name.startswith("exporter") and not record.name.startswith("exporter.simulator"):
            self.records.append(record)


def text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


async def run(inputs: int, rest_share: float, seed: int) -> int:
    rng = random.Random(seed)
    crashes = Crashes()
    logging.getLogger().addHandler(crashes)
    logging.getLogger().setLevel(logging.WARNING)
    stuck = 0
    slowest_scrape = 0.0
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        sim.add_account(KEY)
        account = AccountConfig(
            name="a",
            api_key=KEY,
            api_secret=Secret(sim.account(KEY).api_secret),
            environment="simulator",
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            ping_interval=1.0,
            pong_timeout=0.8,
            poll_interval=0.2,
        )
        metrics = Metrics()
        fleet = Fleet(Config(accounts=[account]), metrics)
        runner = web.AppRunner(make_app(metrics, fleet))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        await fleet.start()

        def value(name: str) -> float:
            return metrics.registry.get_sample_value(name, {"account": "a"}) or 0.0

        async def scrape() -> bool:
            nonlocal slowest_scrape
            started = time.monotonic()
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            slowest_scrape = max(slowest_scrape, time.monotonic() - started)
            return ok

        started = time.monotonic()
        rest = frames = 0
        for i in range(inputs):
            if rng.random() < rest_share:
                sim.force_response(QUERY_DCP_INFO if rng.random() < 0.7 else ORDER_HISTORY, body=text(mutate(rng)))
                rest += 1
            else:
                sim.send_malformed(KEY, text(mutate(rng)))
                frames += 1
            if i % 50 == 0:  # let the frames go out before queueing more (bounded)
                for _ in range(10_000):
                    if sim.background_tasks() == 0:
                        break
                    await asyncio.sleep(0.001)
            if i % 500 == 0 and not await scrape():
                stuck += 1
        sent_in = time.monotonic() - started
        sim.clear_errors()
        deadline = time.monotonic() + 30
        while not (value("bybit_dcp_up") == 1 and value("bybit_dcp_ws_connected") == 1):
            if time.monotonic() > deadline:
                stuck += 1
                break
            await asyncio.sleep(0.1)
        recovered_in = time.monotonic() - started - sent_in
        await fleet.stop()
        await runner.cleanup()
    print(f"inputs tried: {inputs} ({frames} websocket frames, {rest} REST answers) in {sent_in:.1f} s")
    answered = sum(
        metrics.registry.get_sample_value("bybit_dcp_api_requests_total", {"account": "a", "endpoint": e}) or 0.0
        for e in ("query_dcp_info", "order_history")
    )
    # A forced answer waits for the next request to its path and a newer one replaces it.
    print(f"REST requests that met a forced answer or a real one: {answered:.0f}")
    print(f"crashes (ERROR log records): {len(crashes.records)}")
    for record in crashes.records[:5]:
        print(f"  {record.name}: {record.getMessage()}")
    print(f"stuck states: {stuck} (recovered {recovered_in:.1f} s after the last input)")
    print(
        f"invalid frames counted: {value('bybit_dcp_ws_invalid_messages_total'):.0f}; slowest /metrics: {slowest_scrape:.3f} s"
    )
    return 1 if crashes.records or stuck else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--rest-share", type=float, default=0.1, help="share of inputs that are REST answers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return asyncio.run(run(args.inputs, args.rest_share, args.seed))


if __name__ == "__main__":
    sys.exit(main())
