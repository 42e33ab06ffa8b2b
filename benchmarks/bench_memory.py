"""Where a watched account's memory goes, by the package that allocated it (tracemalloc).

Starts fake Bybits in other processes (one per 100 accounts on its own loopback address, as
``bench_vs_sdk.py`` does), then runs the exporter's Fleet, its metrics and the status board's
sampler in this process with tracemalloc on, N observer accounts, until every stream is connected and
each account has polled and ponged. Prints the bytes per account each package holds then
(websockets, prometheus_client, the exporter's metric store, asyncio, aiohttp, zlib...),
above what the process held before the fleet started, and the total; with ``--lines``, also the
source lines that hold the most (file:line, the allocation's own frame).

Given two sizes or more (``--accounts 100 300``), it also runs the exporter itself at each size
in a process of its own, as ``bench_vs_sdk.py`` does (no tracemalloc there: its traces would
count), and prints the resident memory (VmRSS) after the same settling time and its slope, the
RSS one more account costs. That slope is the figure that counts; the tracemalloc breakdown
(taken at the largest size) says where it goes.

    python3 benchmarks/bench_memory.py [--accounts 1000 | --accounts 100 300] [--settle 40] [--lines 25]
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

from bench_vs_sdk import free_port, launch_exporter, start_fakes, status, stop, wait_until_held

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


def resident_kb(accounts: list, workdir: Path, settle: float) -> float:
    """The exporter's VmRSS (KB) with ``accounts``, ``settle`` seconds after the fakes held them all."""
    proc, _ = launch_exporter("exporter", accounts, workdir, free_port(), ())
    try:
        wait_until_held(accounts)
        time.sleep(settle)
        return float(status(proc.pid, "VmRSS"))
    finally:
        stop(proc)


def short(filename: str) -> str:
    """A source file's path from its package down (``exporter/status/sampler.py``, ``asyncio/events.py``)."""
    parts = Path(filename).parts
    for top in ("site-packages", "exporter"):
        if top in parts:
            return "/".join(parts[parts.index(top) + (top == "site-packages") :])
    return "/".join(parts[-2:])


def report(n: int, connected: float, before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, lines: int) -> None:
    held: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        held[group(stat.traceback[0].filename)] += stat.size_diff
    print(f"{n} accounts, all connected after {connected:.1f} s; KB per account held, by package:")
    for name, size in held.most_common():
        if abs(size) / n >= 100:
            print(f"  {size / n / 1024:8.1f}  {name}")
    print(f"  {sum(held.values()) / n / 1024:8.1f}  in all (Python {sys.version.split()[0]})")
    if lines:
        print(f"the {lines} source lines holding the most, KB per account (and blocks per account):")
        stats = after.compare_to(before, "lineno")
        for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:lines]:
            frame = stat.traceback[0]
            where = f"{short(frame.filename)}:{frame.lineno}"
            print(f"  {stat.size_diff / n / 1024:8.2f}  {stat.count_diff / n:6.1f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--accounts", type=int, nargs="+", default=[1000], help="one size, or several for the RSS slope"
    )
    parser.add_argument("--settle", type=float, default=40.0, help="seconds after all connected (default 40)")
    parser.add_argument("--lines", type=int, default=0, help="also the N source lines holding the most")
    parser.add_argument("--no-trace", action="store_true", help="only the RSS slope, no tracemalloc run")
    args = parser.parse_args()
    sizes = sorted(set(args.accounts))
    with tempfile.TemporaryDirectory() as tmp:
        fakes, accounts = start_fakes(sizes[-1], Path(tmp))
        try:
            # The exporter's own processes first, while this one has not yet traced or grown.
            rss = {n: resident_kb(accounts[:n], Path(tmp), args.settle) for n in sizes} if len(sizes) > 1 else {}
            if not args.no_trace:
                tracemalloc.start()
                before, after, connected = asyncio.run(measure(accounts, args.settle))
                tracemalloc.stop()
        finally:
            for fake in fakes:
                stop(fake)
    if not args.no_trace:
        report(sizes[-1], connected, before, after, args.lines)
    if rss:
        print("the exporter's resident memory (VmRSS), in processes of its own:")
        for n in sizes:
            print(f"  {n:6d} accounts  {rss[n] / 1024:8.1f} MB")
        small, large = sizes[0], sizes[-1]
        print(f"  one more account: {(rss[large] - rss[small]) / (large - small):.1f} KB of RSS ({small} -> {large})")


if __name__ == "__main__":
    main()
