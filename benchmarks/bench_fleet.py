"""One exporter process watching a fleet of accounts on the simulator, over loopback.

The design target is one asyncio process for 1,000 accounts. This starts the simulator
and a Fleet (both in this one process, so the figures include the simulator's own
work: an upper bound for the exporter), N observer accounts with a fast heartbeat, and
measures over a steady-state window:

- time until every stream is connected,
- CPU seconds used per wall second (1.0 = one core busy) and per 1,000 pings,
- the median ping RTT the exporter saw,
- the time to serve /metrics over HTTP, and the longest stall of the event loop while a
  scrape is served (a stall delays pongs, so it would show up as heartbeat RTT).

The per-host connection budget (Bybit: 500 new connections per 5 minutes) is lifted for
the run (the fleet is given a larger one): it is Bybit's limit, not the simulator's, and
would only make the benchmark wait.

    python3 benchmarks/bench_fleet.py [--accounts 200] [--ping-interval 1] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest

from exporter.bybit.pacing import ConnectionBudget, Pacing
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.simulator import Simulator
from exporter.web.app import make_app


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rtt_total(metrics: Metrics, suffix: str) -> float:
    """The ping-RTT histogram's ``suffix`` sample (``_count`` or ``_sum``) summed over every account."""
    return sum(
        s.value
        for f in metrics.registry.collect()
        if f.name == "bybit_dcp_ws_ping_rtt_seconds"
        for s in f.samples
        if s.name.endswith(suffix)
    )


async def run(accounts: int, ping_interval: float, seconds: float) -> None:
    pacing = Pacing(budget=ConnectionBudget(limit=accounts * 10 + 2, burst=accounts * 10 + 1))
    async with Simulator() as sim:
        configs = []
        for i in range(accounts):
            key = f"bench-key-{i:04d}"
            sim.add_account(key, f"bench-secret-{i:04d}", name=f"acct-{i:04d}")
            configs.append(
                AccountConfig(
                    name=f"acct-{i:04d}",
                    api_key=key,
                    api_secret=Secret(f"bench-secret-{i:04d}"),
                    environment="simulator",
                    rest_url=sim.rest_url,
                    ws_url=sim.ws_url,
                    ping_interval=ping_interval,
                    pong_timeout=ping_interval * 0.9,
                    poll_interval=30.0,
                )
            )
        metrics = Metrics()
        exporter = Fleet(Config(accounts=configs), metrics, pacing=pacing)
        started = time.perf_counter()
        await exporter.start()
        try:
            deadline = started + 120
            while not all(s.stream.connected for s in exporter.supervisors.values()):
                if time.perf_counter() > deadline:
                    raise SystemExit("not every stream connected within 120 s")
                await asyncio.sleep(0.05)
            connected_after = time.perf_counter() - started

            await asyncio.sleep(2 * ping_interval)  # let the first pings settle
            cpu0, wall0, pings0 = cpu_seconds(), time.perf_counter(), rtt_total(metrics, "_count")
            await asyncio.sleep(seconds)
            cpu1, wall1, pings1 = cpu_seconds(), time.perf_counter(), rtt_total(metrics, "_count")

            scrapes, stalls, body = await scrape_with_loop_probe(metrics, exporter)
            inline_stalls = await inline_render_stalls(metrics)
            rtt_sum = rtt_total(metrics, "_sum")
            cpu_per_s = (cpu1 - cpu0) / (wall1 - wall0)
            answered = pings1 - pings0
            print(f"accounts                   {accounts}")
            print(f"ping interval              {ping_interval:g} s")
            print(f"all streams connected in   {connected_after:.2f} s")
            print(
                f"pings answered             {answered:.0f} in {wall1 - wall0:.1f} s "
                f"({answered / accounts / (wall1 - wall0) * ping_interval:.2f} per account per interval)"
            )
            print(f"CPU per wall second        {cpu_per_s:.3f} (simulator included)")
            print(f"CPU per 1,000 pings        {(cpu1 - cpu0) / max(answered, 1) * 1000:.3f} s")
            print(f"mean ping RTT              {rtt_sum / max(pings1, 1) * 1000:.2f} ms")
            print(f"/metrics scrape (median)   {statistics.median(scrapes) * 1000:.1f} ms, {len(body)} bytes")
            print(
                f"event-loop stall in scrape {statistics.median(stalls) * 1000:.1f} ms median, {max(stalls) * 1000:.1f} ms max"
            )
            print(
                f"  baseline: render on loop {statistics.median(inline_stalls) * 1000:.1f} ms median "
                f"({statistics.median(inline_stalls) / max(statistics.median(stalls), 1e-6):.0f}x the served scrape's stall)"
            )
            print(
                f"extrapolated to 1,000 accounts at a 20 s ping: "
                f"{cpu_per_s * (1000 / accounts) * (ping_interval / 20):.3f} CPU"
            )
        finally:
            await exporter.stop()


async def loop_stall_during(action) -> float:
    """The longest time the event loop was late to wake a 1 ms sleeper while ``action`` ran."""
    worst = 0.0
    done = False

    async def probe() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not done:
            t = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - t - 0.001)

    probe_task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    await action()
    done = True
    await probe_task
    return worst


async def inline_render_stalls(metrics: Metrics, rounds: int = 5) -> list[float]:
    """Baseline: rendering on the event loop itself, as a plain handler would."""

    async def render() -> None:
        generate_latest(metrics.registry)

    return [await loop_stall_during(render) for _ in range(rounds)]


async def scrape_with_loop_probe(metrics: Metrics, exporter: Fleet, rounds: int = 5):
    """Scrape /metrics over loopback while a probe task measures how late the loop runs it."""
    runner = web.AppRunner(make_app(metrics, exporter))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    scrapes, stalls, body = [], [], b""
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(rounds):

                async def scrape() -> None:
                    nonlocal body
                    t = time.perf_counter()
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        body = await response.read()
                    scrapes.append(time.perf_counter() - t)

                stalls.append(await loop_stall_during(scrape))
    finally:
        await runner.cleanup()
    return scrapes, stalls, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--ping-interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(run(args.accounts, args.ping_interval, args.seconds))


if __name__ == "__main__":
    main()
