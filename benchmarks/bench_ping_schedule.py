"""What a ping cycle costs, by schedule: a bare websockets loop and the exporter's stream.

N connections to fake Bybits in other processes (one per 100 accounts, as in bench_vs_sdk.py),
each pinging every ``--interval`` seconds. The pings go at once and then on a grid, with the
phases of the N connections chosen by the schedule:

- together: every connection at the same moment (what a client does whose connections all
  opened together and ping every interval from then on);
- 1s, 250ms: a random step of that size within the interval (the exporter's grid is 250 ms);
- random: a random moment within the interval.

Each client and schedule runs in a fresh process; it prints the CPU of that process over the
window per ping cycle (one ping and its pong) and as a share of a core.

    python3 benchmarks/bench_ping_schedule.py [--accounts 1000] [--interval 20] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_vs_sdk import Account, hold_with_websockets, ping_schedule, start_fakes, stop

SCHEDULES = {"together": 0.0, "1s": 1.0, "250ms": 0.25, "random": None}
CLIENTS = ("bare", "stream")


def phases(n: int, interval: float, step: float | None) -> list[float]:
    """Each connection's phase within the interval; the same for both clients (seeded)."""
    rng = random.Random(7)
    if step is None:
        return [rng.random() * interval for _ in range(n)]
    if step == 0.0:
        return [0.0] * n
    steps = max(1, int(interval / step))  # an interval shorter than the step has one step
    return [rng.randrange(steps) * step for _ in range(n)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def child(client: str, accounts: list[Account], interval: float, step: float | None, seconds: float) -> dict:
    from exporter.bybit.pacing import ConnectionBudget  # only in the child processes
    from exporter.bybit.stream import PrivateStream, StreamConfig
    from exporter.metrics import Metrics
    from exporter.monitor.stream_metrics import StreamMetrics
    from exporter.secrets import Secret

    ready: list[int] = []
    metrics = Metrics()
    budget = ConnectionBudget(limit=len(accounts), burst=len(accounts))  # every host's 100 at once
    tasks = []
    for i, (account, phase) in enumerate(zip(accounts, phases(len(accounts), interval, step), strict=True)):
        if client == "bare":
            beat = hold_with_websockets(account, ping_schedule(phase, interval), lambda: ready.append(1))
            tasks.append(asyncio.create_task(beat))
            continue
        config = StreamConfig(
            account.ws_url, account.key, Secret(account.secret), ("order",), ping_interval=interval, ping_phase=phase
        )
        stream = PrivateStream(
            f"acct-{i}", config, StreamMetrics(metrics, f"acct-{i}"), on_orders=lambda orders: None, budget=budget
        )
        tasks.append(asyncio.create_task(stream.run()))

    def connected() -> int:
        if client == "bare":
            return len(ready)
        return sum(1 for _, value in metrics.ws_connected.rows() if value == 1)

    while connected() < len(accounts):
        await asyncio.sleep(0.1)
    await asyncio.sleep(interval + 2)  # every connection past its first ping, on its grid
    cpu0, t0 = cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, elapsed = cpu_seconds() - cpu0, time.monotonic() - t0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cycles = len(accounts) * elapsed / interval
    return {"us_per_cycle": 1e6 * cpu / cycles, "cpu_percent": 100 * cpu / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between pings (default 20)")
    parser.add_argument("--seconds", type=float, default=40.0, help="CPU measuring window (default 40)")
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "SCHEDULE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        client, schedule, spec = args.child
        accounts = [Account(**a) for a in json.loads(Path(spec).read_text())]
        figures = asyncio.run(child(client, accounts, args.interval, SCHEDULES[schedule], args.seconds))
        print(json.dumps(figures), flush=True)
        return
    print(f"{args.accounts} connections, a ping every {args.interval:g} s, {args.seconds:g} s windows")
    print(f"{'schedule':<10} {'client':<8} {'µs per cycle':>13} {'CPU %':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        fakes, accounts = start_fakes(args.accounts, Path(tmp))
        spec = Path(tmp) / "accounts.json"
        spec.write_text(json.dumps([a.__dict__ for a in accounts]))
        try:
            for schedule in SCHEDULES:
                for client in CLIENTS:
                    command = [sys.executable, __file__, "--child", client, schedule, str(spec)]
                    command += ["--interval", str(args.interval), "--seconds", str(args.seconds)]
                    run = subprocess.run(command, capture_output=True, text=True)
                    if run.returncode != 0:
                        raise SystemExit(f"the {client} client on the {schedule} schedule failed:\n{run.stderr}")
                    figures = json.loads(run.stdout.splitlines()[-1])
                    print(
                        f"{schedule:<10} {client:<8} {figures['us_per_cycle']:>13.0f} {figures['cpu_percent']:>7.2f}",
                        flush=True,
                    )
        finally:
            for fake in fakes:
                stop(fake)


if __name__ == "__main__":
    main()
