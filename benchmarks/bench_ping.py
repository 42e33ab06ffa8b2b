"""CPU per ping cycle: the exporter's private stream against a bare websockets client, same run.

A ping cycle is one JSON ping written and its pong read (for the exporter also parsed, matched
and recorded in the ``bybit_dcp_ws_*`` series). Both clients hold ``--streams`` authenticated,
subscribed connections to the simulator (in child processes on loopback, one per 100
connections, as in bench_vs_sdk.py) and ping at once and then every ``--interval`` seconds on
the exporter's grid (each connection at its ``stable_phase`` of the interval), with no REST poll:

- wsfloor: ``bench_vs_sdk.hold_with_websockets``, the "wsfloor" client of bench_vs_sdk.py
  (auth, subscribe, JSON pings, every frame read and dropped): the least a connection costs
  with the exporter's websocket stack;
- stream: :class:`exporter.bybit.stream.PrivateStream` with the exporter's observer
  (:class:`exporter.monitor.stream_metrics.StreamMetrics`), as the monitor runs it, its pong
  timeout half the interval, as the defaults are (a ping every 20 s, 10 s for its pong).

Each client runs in a fresh process, alternately, ``--rounds`` times; each process measures its own
``time.process_time`` over a window of about ``--pongs`` cycles after a warm-up of one interval,
and the cycles are counted on the grid (the exporter's pong count is printed beside it as a
check). The ratio printed is stream / wsfloor per round and their medians.

With ``--callgrind`` each client runs under ``valgrind --tool=callgrind`` twice, with a window of
``--pongs`` cycles and one twice as long: the difference in instructions over the difference in
cycles is the instructions of one cycle (idle wake-ups included, as in the CPU time), without
the start-up, and it does not depend on how busy the machine is. Slow: keep
``--streams`` near 20 there (valgrind runs some 50 times slower and the pongs must not time out).
``--keep`` leaves the callgrind.out files in the working directory for callgrind_annotate.

    python3 benchmarks/bench_ping.py [--streams 200] [--interval 1] [--pongs 4000] [--rounds 2]
    python3 benchmarks/bench_ping.py --rounds 1 --profile /tmp/ping   # and where the time goes
    python3 benchmarks/bench_ping.py --callgrind [--streams 20] [--pongs 400] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_vs_sdk import Account, hold_with_websockets, ping_schedule, start_fakes, stop

SELF = resource.RUSAGE_SELF
CLIENTS = ("wsfloor", "stream")


async def child(
    client: str, accounts: list[Account], interval: float, pongs: int, count_only: bool, profile: str | None
) -> dict:
    """Hold the connections, warm up, then measure ``pongs`` cycles (by time, or by count)."""
    from exporter.bybit.pacing import ConnectionBudget, stable_phase  # only in the child processes
    from exporter.bybit.stream import PrivateStream, StreamConfig
    from exporter.metrics import Metrics
    from exporter.monitor.stream_metrics import StreamMetrics
    from exporter.secrets import Secret

    ready: list[int] = []
    metrics = Metrics()
    budget = ConnectionBudget(limit=len(accounts), burst=len(accounts))  # every connection at once
    names = [f"acct-{i:04d}" for i in range(len(accounts))]
    tasks = []
    for name, account in zip(names, accounts, strict=True):
        phase = stable_phase(account.key, "ping", interval)
        if client == "wsfloor":
            beat = hold_with_websockets(account, ping_schedule(phase, interval), lambda: ready.append(1))
            tasks.append(asyncio.create_task(beat))
            continue
        metrics.add_account(name, environment="testnet", mode="observer")
        config = StreamConfig(
            account.ws_url,
            account.key,
            Secret(account.secret),
            ("order",),
            ping_interval=interval,
            pong_timeout=interval / 2,  # the shape of the defaults (20 s and 10 s): a pong's deadline within each cycle
            ping_phase=phase,
        )
        stream = PrivateStream(name, config, StreamMetrics(metrics, name), on_orders=lambda orders: None, budget=budget)
        tasks.append(asyncio.create_task(stream.run()))

    def connected() -> int:
        if client == "wsfloor":
            return len(ready)
        return sum(1 for _, value in metrics.ws_connected.rows() if value == 1)

    def pong_count() -> float:
        if client == "wsfloor":
            return float("nan")
        get = metrics.registry.get_sample_value
        return sum(get("bybit_dcp_ws_ping_rtt_seconds_count", {"account": name}) or 0 for name in names)

    while connected() < len(accounts):
        await asyncio.sleep(0.05)
    await asyncio.sleep(interval + 0.5)  # every connection past its first ping, on its grid
    window = pongs / len(accounts) * interval
    profiler = cProfile.Profile() if profile else None
    pongs0, cpu0, t0, usage0 = pong_count(), time.process_time(), time.monotonic(), resource.getrusage(SELF)
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(window)  # one sleep: looking at the registry meanwhile would cost too
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu, elapsed, usage, pongs1 = (
        time.process_time() - cpu0,
        time.monotonic() - t0,
        resource.getrusage(SELF),
        pong_count(),
    )
    if count_only:  # the callgrind run: the instructions of the whole process are what is read
        return {}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cycles = len(accounts) * elapsed / interval  # pings due on the grid in the window
    return {
        "us_per_cycle": 1e6 * cpu / cycles,
        "user_us": 1e6 * (usage.ru_utime - usage0.ru_utime) / cycles,  # the Python side
        "sys_us": 1e6 * (usage.ru_stime - usage0.ru_stime) / cycles,  # the kernel's: sockets, epoll
        "cpu_percent": 100 * cpu / elapsed,
        "pongs": pongs1 - pongs0,
    }


def run_child(client: str, spec: Path, args: argparse.Namespace, pongs: int, wrapper: list[str]) -> dict:
    command = [*wrapper, sys.executable, __file__, "--child", client, str(spec)]
    command += ["--interval", str(args.interval), "--pongs", str(pongs)]
    if wrapper:
        command.append("--count-only")
    if args.profile:
        command += ["--profile", f"{args.profile}.{client}"]
    run = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent)
    if run.returncode != 0:
        raise SystemExit(f"the {client} client failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.splitlines()[-1])


def instructions(out: Path) -> int:
    match = re.search(r"^summary:\s+(\d+)", out.read_text(errors="replace"), re.M)
    if not match:
        raise SystemExit(f"no summary line in {out}")
    return int(match.group(1))


def callgrind(spec: Path, args: argparse.Namespace, workdir: Path) -> None:
    per_cycle = {}
    for client in CLIENTS:
        counts = []
        for pongs in (args.pongs, 2 * args.pongs):
            out = (Path.cwd() if args.keep else workdir) / f"callgrind.out.{client}.{pongs}"
            run_child(client, spec, args, pongs, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
            counts.append(instructions(out))
        per_cycle[client] = (counts[1] - counts[0]) / args.pongs
        print(f"{client:<8} {per_cycle[client]:>12,.0f} instructions per cycle", flush=True)
    print(f"ratio stream / wsfloor: {per_cycle['stream'] / per_cycle['wsfloor']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between pings (default 1)")
    parser.add_argument("--pongs", type=int, default=4000, help="cycles measured per client and round")
    parser.add_argument("--rounds", type=int, default=2, help="each client this many times, alternately")
    parser.add_argument("--callgrind", action="store_true", help="instructions per cycle under valgrind")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind.out files (with --callgrind)")
    parser.add_argument("--profile", metavar="PREFIX", help="cProfile the window into PREFIX.<client>, print the top")
    parser.add_argument("--child", nargs=2, metavar=("CLIENT", "SPEC"), help=argparse.SUPPRESS)
    parser.add_argument("--count-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        client, spec = args.child
        accounts = [Account(**a) for a in json.loads(Path(spec).read_text())]
        figures = asyncio.run(child(client, accounts, args.interval, args.pongs, args.count_only, args.profile))
        print(json.dumps(figures), flush=True)
        return
    print(f"{args.streams} connections, a ping every {args.interval:g} s on the grid, ~{args.pongs} cycles a run")
    with tempfile.TemporaryDirectory() as tmp:
        fakes, accounts = start_fakes(args.streams, Path(tmp))
        spec = Path(tmp) / "accounts.json"
        spec.write_text(json.dumps([a.__dict__ for a in accounts]))
        try:
            if args.callgrind:
                callgrind(spec, args, Path(tmp))
                return
            print(f"{'round':<6} {'client':<8} {'µs per cycle':>13} {'user':>7} {'sys':>7} {'CPU %':>7} {'pongs':>7}")
            figures: dict[str, list[float]] = {client: [] for client in CLIENTS}
            for round_ in range(args.rounds):
                for client in CLIENTS:
                    got = run_child(client, spec, args, args.pongs, [])
                    figures[client].append(got["us_per_cycle"])
                    print(
                        f"{round_ + 1:<6} {client:<8} {got['us_per_cycle']:>13.1f} {got['user_us']:>7.1f}"
                        f" {got['sys_us']:>7.1f} {got['cpu_percent']:>7.2f}"
                        f" {got['pongs']:>7.0f}",
                        flush=True,
                    )
                time.sleep(0.5)
            if args.profile:
                for client in CLIENTS:
                    print(f"\n---- {client}: the top by own time (cProfile, {args.profile}.{client})")
                    pstats.Stats(f"{args.profile}.{client}").sort_stats("tottime").print_stats(25)
            ratios = [s / f for s, f in zip(figures["stream"], figures["wsfloor"], strict=True)]
            floor, stream = statistics.median(figures["wsfloor"]), statistics.median(figures["stream"])
            print(f"median: wsfloor {floor:.1f} µs, stream {stream:.1f} µs per cycle")
            print(f"ratio stream / wsfloor: {stream / floor:.2f} (per round: {', '.join(f'{r:.2f}' for r in ratios)})")
        finally:
            for fake in fakes:
                stop(fake)


if __name__ == "__main__":
    main()
