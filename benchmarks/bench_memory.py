"""Where a watched account's memory goes, by the package that allocated it (tracemalloc).

Starts fake Bybits in other processes (one per 100 accounts on its own loopback address, as
``bench_vs_sdk.py`` does), then runs the exporter's Fleet, its metrics and the status board's
sampler in this process with tracemalloc on, N observer accounts, until every stream is connected and
each account has polled and ponged. Prints the bytes per account each package holds then
(websockets, prometheus_client, the exporter's metric store, asyncio, aiohttp, zlib...),
above what the process held before the fleet started, and the total.

    python3 benchmarks/bench_memory.py [--accounts 1000] [--settle 40]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench_vs_sdk import start_fakes, stop

from exporter.bybit.pacing import ConnectionBudget, Pacing
from exporter.config import AccountConfig, Config
from exporter.metrics import Metrics
from exporter.monitor.fleet import Fleet
from exporter.secrets import Secret
from exporter.status.service import StatusService


def group(filename: str) -> str:
    """The package (or the exporter's module) a source file belongs to."""
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "exporter" in parts:
        return "exporter." + ".".join(parts[parts.index("exporter") + 1 :]).removesuffix(".py")
    return path.stem  # the standard library: asyncio's modules, ssl, json ...


def config(accounts: list) -> Config:
    return Config(
        accounts=[
            AccountConfig(
                name=f"acct-{i:04d}",
                api_key=a.key,
                api_secret=Secret(a.secret),
                rest_url=a.rest_url,
                ws_url=a.ws_url,
            )
            for i, a in enumerate(accounts)
        ]
    )


async def measure(accounts: list, settle: float) -> tuple[tracemalloc.Snapshot, tracemalloc.Snapshot, float]:
    before = tracemalloc.take_snapshot()
    metrics = Metrics()
    # Bybit's per-host budget would only make the run wait (the fakes are on their own addresses anyway).
    fleet = Fleet(config(accounts), metrics, pacing=Pacing(budget=ConnectionBudget(limit=100_000, burst=50_000)))
    started = time.monotonic()
    async with fleet:
        while sum(s.value for f in metrics.ws_connected.collect() for s in f.samples) < len(accounts):
            await asyncio.sleep(0.5)
        connected = time.monotonic() - started
        board = StatusService(metrics)  # the status board's sampler keeps a little history per account
        for _ in range(int(settle // 5)):  # a poll and a few pongs each, sampled every 5 s as in the exporter
            await asyncio.sleep(5)
            await asyncio.to_thread(board.sample)
        return before, tracemalloc.take_snapshot(), connected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=40.0, help="seconds after all connected (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fakes, accounts = start_fakes(args.accounts, Path(tmp))
        try:
            tracemalloc.start()
            before, after, connected = asyncio.run(measure(accounts, args.settle))
        finally:
            for fake in fakes:
                stop(fake)
    held: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        held[group(stat.traceback[0].filename)] += stat.size_diff
    n = args.accounts
    print(f"{n} accounts, all connected after {connected:.1f} s; KB per account held, by package:")
    for name, size in held.most_common():
        if abs(size) / n >= 100:
            print(f"  {size / n / 1024:8.1f}  {name}")
    print(f"  {sum(held.values()) / n / 1024:8.1f}  in all (Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
