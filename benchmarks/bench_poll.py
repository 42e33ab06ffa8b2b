"""The exporter's CPU for one signed DCP-config poll, against a bare aiohttp GET on the same fake.

The simulator runs in a child process on loopback, so the figures are this process's alone
(``time.process_time`` over the measured polls, divided by the polls). Two loops, one after the
other, in the same run:

- the exporter's poll: ``--accounts`` :class:`~exporter.monitor.account.AccountSupervisor`\\ s
  built as the fleet builds them (their REST clients on one session with the fleet's connector,
  User-Agent and wire-timing trace hooks), and ``poll_once`` called round-robin over them,
  ``--polls`` times: the signing, the headers, the request, the trace hooks, the bounded body
  read, the JSON, the answer's classification, and every metric the supervisor and the
  client's observer write per poll;
- the baseline: a bare ``aiohttp.ClientSession().get(...)`` of the same endpoint with headers
  signed once a second, its body read with ``read()``: what any aiohttp client pays per GET.

``--concurrency`` polls are in flight at once (1: one after the other). ``--profile`` prints
cProfile's top entries of the exporter's loop. ``--callgrind`` runs this script under
``valgrind --tool=callgrind`` twice, with ``--polls`` and twice as many, and prints the
instructions per poll from the difference (set-up, warm-up and exit cancel out): steadier on a
busy machine than CPU time. Needs valgrind (``apt-get install valgrind``).

    python3 benchmarks/bench_poll.py [--accounts 1000] [--polls 5000] [--concurrency 1]
    python3 benchmarks/bench_poll.py --profile
    python3 benchmarks/bench_poll.py --callgrind --accounts 200 --polls 500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from exporter.bybit import wire
from exporter.bybit.signing import sign_rest
from exporter.bybit.tls import lean_read_buffers, session_context
from exporter.config import AccountConfig, Config
from exporter.dcp import ENDPOINT_PATHS
from exporter.metrics import Metrics
from exporter.monitor import fleet
from exporter.monitor.account import AccountSupervisor
from exporter.monitor.fleet import CONNECTION_POOL_SIZE, MIN_KEEPALIVE_SECONDS, USER_AGENT
from exporter.monitor.rest_metrics import PoolMetrics
from exporter.runtime.allocator import keep_memory_small
from exporter.runtime.clock import SYSTEM_CLOCK
from exporter.secrets import Secret

SIMULATOR = """
import asyncio, sys
from exporter.simulator import Simulator

async def serve(accounts):
    async with Simulator(rate_limit_per_second=100_000) as sim:  # out of the way, and a sane X-Bapi-Limit
        for i in range(accounts):
            sim.add_account(f"poll-{i:05d}", f"poll-secret-{i:05d}", dcp={"DERIVATIVES": 10})
        print(sim.rest_url, flush=True)
        await asyncio.Event().wait()

asyncio.run(serve(int(sys.argv[1])))
"""
DCP_INFO = ENDPOINT_PATHS["query_dcp_info"]


def key(i: int) -> tuple[str, str]:
    return f"poll-{i:05d}", f"poll-secret-{i:05d}"


@dataclass(frozen=True)
class Cpu:
    """CPU seconds per call, in user space and in the kernel (the loopback TCP stack, epoll)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __str__(self) -> str:
        return f"{self.total * 1e6:.0f} us CPU ({self.user * 1e6:.0f} user + {self.system * 1e6:.0f} kernel)"


async def timed(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> Cpu:
    """CPU per call of ``one(i)`` for i in range(n), ``concurrency`` at a time (this process's
    ``getrusage``: what ``time.process_time`` counts, split)."""
    start = resource.getrusage(resource.RUSAGE_SELF)
    if concurrency == 1:
        for i in range(n):
            await one(i)
    else:

        async def lane(offset: int) -> None:
            for i in range(offset, n, concurrency):
                await one(i)

        await asyncio.gather(*(lane(c) for c in range(concurrency)))
    end = resource.getrusage(resource.RUSAGE_SELF)
    return Cpu((end.ru_utime - start.ru_utime) / n, (end.ru_stime - start.ru_stime) / n)


def fleet_session(url: str, metrics: Metrics) -> dict[str, object]:
    """The arguments of the fleet's one session: its connector (with the wire timing, as a
    TimedConnector where there is one, else as a TraceConfig), its User-Agent."""
    pool: dict[str, object] = {
        "limit": CONNECTION_POOL_SIZE,
        "keepalive_timeout": MIN_KEEPALIVE_SECONDS,
        "ssl": session_context([url]),
    }
    if hasattr(wire, "TimedConnector"):
        connector = wire.TimedConnector(SYSTEM_CLOCK, PoolMetrics(metrics), **pool)
        return {"connector": connector, "headers": {"User-Agent": USER_AGENT}}
    return {
        "connector": aiohttp.TCPConnector(**pool),  # type: ignore[arg-type]
        "headers": {"User-Agent": USER_AGENT},
        "trace_configs": [wire.session_tracing(SYSTEM_CLOCK, PoolMetrics(metrics))],
    }


async def exporter_polls(url: str, args: argparse.Namespace) -> Cpu:
    metrics = Metrics()
    session = aiohttp.ClientSession(  # as Fleet.start builds the fleet's one session
        **fleet_session(url, metrics),
    )
    async with session:
        configs = []
        for i in range(args.accounts):
            api_key, secret = key(i)
            config = AccountConfig(
                name=f"acct-{i:05d}",
                api_key=api_key,
                api_secret=Secret(secret),
                environment="simulator",
                rest_url=url,
                ws_url=url.replace("http", "ws") + "/v5/private",
            )
            metrics.add_account(config.name, environment=config.environment, mode=config.mode)
            configs.append(config)
        # The fleet's REST pool where the tree has one (its transport for every poll), else the session.
        transport = {}
        if hasattr(fleet, "rest_pool"):
            transport["transport"] = fleet.rest_pool(Config(accounts=configs), metrics, session)
        supervisors = [AccountSupervisor(config, metrics, session, **transport) for config in configs]
        count = len(supervisors)

        async def poll(i: int) -> None:
            if not await supervisors[i % count].poll_once():
                raise RuntimeError(f"a poll failed: {supervisors[i % count].last_poll_error}")

        await timed(max(count, 200), args.concurrency, poll)  # warm: every account's series, the pool
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU, not wall: steadier on a busy machine
            profile.enable()
            cpu = await timed(args.polls, args.concurrency, poll)
            profile.disable()
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(args.profile_top)
            stats.sort_stats("cumulative").print_stats(args.profile_top)
            return cpu
        return await timed(args.polls, args.concurrency, poll)


async def bare_gets(url: str, args: argparse.Namespace) -> Cpu:
    signed: dict[int, dict[str, str]] = {}

    def headers(i: int) -> dict[str, str]:
        """Signed once a second per account: the baseline pays for the GET alone."""
        second = int(time.time())
        if second not in signed:
            signed.clear()
        per_second = signed.setdefault(second, {})  # type: ignore[arg-type]
        account = i % args.accounts
        if account not in per_second:
            api_key, secret = key(account)
            per_second[account] = sign_rest(api_key, secret, int(time.time() * 1000), "").as_dict()  # type: ignore[index]
        return per_second[account]  # type: ignore[index,return-value]

    async with aiohttp.ClientSession() as session:
        target = url + DCP_INFO

        async def get(i: int) -> None:
            async with session.get(target, headers=headers(i)) as response:
                body = await response.read()
            if response.status != 200 or b'"retCode":0' not in body:
                raise RuntimeError(f"the bare GET failed: {response.status} {body[:200]!r}")

        await timed(max(args.accounts, 200), args.concurrency, get)
        return await timed(args.polls, args.concurrency, get)


def start_simulator(accounts: int) -> tuple[subprocess.Popen[str], str]:
    sim = subprocess.Popen([sys.executable, "-c", SIMULATOR, str(accounts)], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None
    return sim, sim.stdout.readline().strip()


async def run(args: argparse.Namespace) -> dict[str, Cpu]:
    sim, url = start_simulator(args.accounts)
    try:
        out: dict[str, Cpu] = {}
        if args.only in (None, "exporter"):
            out["exporter"] = await exporter_polls(url, args)
        if args.only in (None, "bare"):
            out["bare"] = await bare_gets(url, args)
        return out
    finally:
        sim.terminate()
        sim.wait(10)


def callgrind(args: argparse.Namespace) -> None:
    """Instructions per poll: two runs under callgrind, ``--polls`` apart, each side on its own."""
    figures: dict[str, float] = {}
    for side in ("exporter", "bare"):
        totals = []
        with tempfile.TemporaryDirectory() as tmp:
            for polls in (args.polls, 2 * args.polls):
                out = Path(tmp) / f"callgrind.{side}.{polls}"
                command = [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "--accounts",
                    str(args.accounts),
                    "--polls",
                    str(polls),
                    "--concurrency",
                    str(args.concurrency),
                    "--only",
                    side,
                ]
                result = subprocess.run(
                    command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
                )
                found = re.search(r"Collected : (\d+)", result.stderr)
                if result.returncode != 0 or found is None:
                    raise RuntimeError(f"callgrind run failed:\n{result.stderr[-2000:]}")
                totals.append(int(found.group(1)))
        figures[side] = (totals[1] - totals[0]) / args.polls
    print(
        f"exporter poll (query_dcp_info, {args.accounts} accounts): {figures['exporter'] / 1e3:.1f} k instructions per poll"
    )
    print(f"bare aiohttp GET, same fake:                   {figures['bare'] / 1e3:.1f} k instructions per GET")
    print(f"ratio                                          {figures['exporter'] / figures['bare']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--accounts", type=int, default=1000, help="accounts polled round-robin")
    p.add_argument("--polls", type=int, default=5000, help="polls measured (after one per account to warm)")
    p.add_argument("--concurrency", type=int, default=1, help="polls in flight at once")
    p.add_argument("--profile", action="store_true", help="cProfile the exporter's measured loop")
    p.add_argument("--profile-top", type=int, default=30)
    p.add_argument("--callgrind", action="store_true", help="instructions per poll, under valgrind")
    p.add_argument("--only", choices=("exporter", "bare"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.callgrind:
        callgrind(args)
        return
    # The process as the exporter's command line sets it up, for both loops: the allocator's
    # options and TLS's read buffers (without them every 256 KiB socket read is an mmap,
    # an mremap and a munmap here, which the exporter itself never pays).
    keep_memory_small()
    lean_read_buffers()
    figures = asyncio.run(run(args))
    if args.only is not None:
        print(json.dumps({side: asdict(cpu) for side, cpu in figures.items()}))
        return
    exporter, bare = figures["exporter"], figures["bare"]
    print(f"exporter poll (query_dcp_info, {args.accounts} accounts, {args.polls} polls): {exporter} per poll")
    print(f"bare aiohttp GET, same fake:                                 {bare} per GET")
    print(f"ratio                                                        {exporter.total / bare.total:.2f}")


if __name__ == "__main__":
    main()
