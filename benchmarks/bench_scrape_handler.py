"""What a /metrics scrape costs through the web handler, at 1,000 accounts in a running state.

The registry holds N accounts as after some hours of running (every account added, polled,
ponging, with RTT and heartbeat histograms of a few hundred observations each; one in four a
guardian; one in ten with an error and a reconnect). Before each scrape, one scrape interval's
worth of changes (15 s): three accounts in four pong (RTT, heartbeat gap, last pong), one in
two polls (a request, its latency, the rate limit left, the same DCP state again).

The exporter's app (``exporter.web.app.make_app``) serves on 127.0.0.1; an aiohttp client in
the same loop scrapes it as Prometheus does (OpenMetrics first, gzip), then as curl would
(plain text). Beside them, in the same run and on the same registry, the baseline:
prometheus_client's own OpenMetrics writer (``generate_latest``), gzipped at the same level,
in a worker thread, as an aiohttp handler would serve it with prometheus_client alone. For
each: p50 and p95 of the request's time (wall) and of the process's CPU time per scrape, the
body's size, the longest a 1 ms sleep on the loop overslept while the scrapes ran (and, the
control, as long again with no scrape), and the longest any one loop callback ran meanwhile in
CPU time (what the scrape itself made the loop wait, whatever else the machine was doing). The
client runs in the same loop: its reading of the answer counts in all of these.

With ``--memory``, instead: the bytes the metric store holds per account for N accounts in
that state (tracemalloc, by the exporter's module that allocated them), and what a gzipped
scrape keeps afterwards (each family's compressed text).

    python3 benchmarks/bench_scrape_handler.py [--accounts 1000] [--scrapes 15]
    python3 benchmarks/bench_scrape_handler.py --memory [--accounts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable

import aiohttp
from aiohttp import web
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.dcp import PRODUCTS
from exporter.metrics import Metrics
from exporter.runtime.pauses import prefer_the_loop
from exporter.web.app import GZIP_LEVEL, make_app

PROMETHEUS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
CURL = {"Accept": "*/*", "Accept-Encoding": "identity"}
NOW = 1_765_000_000.0


class Running:
    """N accounts as after some running, and one scrape interval's changes at a time (seeded)."""

    def __init__(self, accounts: int, seed: int = 7) -> None:
        self.rnd = random.Random(seed)
        self.now = NOW
        self.metrics = Metrics(clock=lambda: self.now)
        self.names = [f"desk-{i:04d}" for i in range(accounts)]
        self.last_pong = dict.fromkeys(self.names, NOW)
        m, rnd = self.metrics, self.rnd
        for i, name in enumerate(self.names):
            guardian = i % 4 == 0
            m.add_account(
                name,
                environment="testnet" if i % 5 == 0 else "mainnet",
                mode="guardian" if guardian else "observer",
                desired_windows={"SPOT": 10, "DERIVATIVES": 10},
                ping_interval=20,
                pong_timeout=10,
                poll_interval=30,
            )
            m.ping_gap.set_source(name, lambda name=name: self.last_pong[name])
            m.ws_connected.labels(name).set(1)
            m.unified_margin_status.labels(name).set(3)
            m.clock_skew.labels(name).set(rnd.uniform(-0.5, 0.5))
            for product in PRODUCTS[:2]:
                m.ws_dcp_subscribed.labels(name, product).set(1)
            for _ in range(rnd.randint(100, 600)):
                self.pong(name)
            for _ in range(rnd.randint(10, 300)):
                self.poll(name)
            if i % 10 == 0:
                m.api_errors.labels(name, "query_dcp_info", "10004").inc()
                m.ws_reconnects.labels(name, "pong_timeout").inc()
                m.last_poll_error.labels(name, "10004", "check the secret").set(1)
            if guardian:
                m.guardian_armed.labels(name, "SPOT").set(1)
                m.guardian_transitions.labels(name, "armed").inc()
                m.drill_last_run.labels(name, "SPOT").set(NOW - rnd.uniform(0, 86_400))
                m.drill_last_success.labels(name, "SPOT").set(1)
        m.set_shard(0, 1, accounts)

    def pong(self, name: str) -> None:
        m, rtt = self.metrics, self.rnd.lognormvariate(-3.5, 0.6)
        m.ws_rtt.labels(name).observe(rtt)
        m.ws_heartbeat_gap.labels(name).observe(self.rnd.gauss(20, 0.2))
        self.last_pong[name] = self.now - self.rnd.uniform(0, 0.5)
        m.ws_last_pong.labels(name).set(self.last_pong[name])

    def poll(self, name: str) -> None:
        m, environment = self.metrics, "mainnet"
        m.api_requests.labels(name, "query_dcp_info").inc()
        m.api_duration.labels(environment, "query_dcp_info").observe(self.rnd.uniform(0.02, 0.2))
        m.rate_limit_remaining.labels(name, "query_dcp_info").set(self.rnd.randint(8, 10))
        m.rate_limit.labels(name, "query_dcp_info").set(10)
        m.up.labels(name).set(1)
        for product in PRODUCTS[:2]:
            m.enabled.labels(name, product).set(1)
            m.window.labels(name, product).set(10)
            m.drift.labels(name, product).set(0)
        m.last_poll_success.labels(name).set(self.now - self.rnd.uniform(0, 1))

    def interval(self, seconds: float = 15.0) -> None:
        """What happens between two scrapes: pings every 20 s, polls every 30 s."""
        self.now += seconds
        for name in self.names:
            if self.rnd.random() < seconds / 20:
                self.pong(name)
            if self.rnd.random() < seconds / 30:
                self.poll(name)


class _State:
    ready = True

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def account_names(self) -> list[str]:
        return self._names


def baseline_app(metrics: Metrics) -> web.Application:
    """prometheus_client's OpenMetrics writer, gzipped at the exporter's level, in a worker thread."""

    async def scrape(request: web.Request) -> web.Response:
        def render() -> bytes:
            return gzip.compress(generate_openmetrics(metrics.registry), compresslevel=GZIP_LEVEL)

        body = await asyncio.to_thread(render)
        return web.Response(
            body=body,
            headers={
                "Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8",
                "Content-Encoding": "gzip",
            },
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


class Longest:
    """The longest single run of a loop callback, in the loop thread's CPU time (steady on a busy
    machine, where the probe's wall-clock wait also counts the time other processes had the core;
    the thread's, as the compressing thread's time is not the loop's)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._run = asyncio.events.Handle._run

    def __enter__(self) -> Longest:
        run, longest = self._run, self

        def timed(handle: asyncio.events.Handle) -> None:
            start = time.thread_time()
            run(handle)
            longest.worst = max(longest.worst, time.thread_time() - start)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._run  # type: ignore[method-assign]


class Probe:
    """The longest a 1 ms sleep on the loop oversleeps while it runs (and ``on``: the benchmark's
    own work between scrapes, the next interval's changes, is not counted)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.on = True
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            start, counted = clock(), self.on
            await asyncio.sleep(0.001)
            if counted and self.on:
                self.worst = max(self.worst, clock() - start - 0.001)

    def __enter__(self) -> Probe:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def scrapes(
    session: aiohttp.ClientSession, port: int, headers: dict[str, str], rounds: int, between: Callable[[], None]
) -> tuple[list[float], list[float], bytes, float, float]:
    """``rounds`` scrapes with one interval's changes before each: wall and CPU seconds, the last
    body, the probe's longest wait and the longest callback (CPU)."""
    walls, cpus, body = [], [], b""
    url = f"http://127.0.0.1:{port}/metrics"
    async with session.get(url, headers=headers) as answer:  # a first scrape: what is kept is kept from then on
        await answer.read()
    longest = 0.0
    with Probe() as probe:
        for _ in range(rounds):
            probe.on = False
            between()
            await asyncio.sleep(0.05)
            probe.on = True
            wall, cpu = time.perf_counter(), time.process_time()
            with Longest() as callback:
                async with session.get(url, headers=headers) as answer:
                    body = await answer.read()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            longest = max(longest, callback.worst)
    return walls, cpus, body, probe.worst, longest


async def control(seconds: float) -> float:
    with Probe() as probe:
        await asyncio.sleep(seconds)
    return probe.worst


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1e3 * (statistics.median(ordered) if q == 0.5 else ordered[int(q * (len(ordered) - 1))])


async def run(accounts: int, rounds: int) -> None:
    prefer_the_loop()  # as the fleet sets it at start-up
    running = Running(accounts)
    metrics = running.metrics
    exporter, exporter_port = await serve(make_app(metrics, _State(running.names)))
    baseline, baseline_port = await serve(baseline_app(metrics))
    rows: list[tuple[str, list[float], list[float], bytes, float, float]] = []
    spent = time.perf_counter()
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for label, port, headers in (
                ("prometheus_client, gzip (baseline)", baseline_port, PROMETHEUS),
                ("exporter, OpenMetrics + gzip", exporter_port, PROMETHEUS),
                ("exporter, plain text", exporter_port, CURL),
            ):
                rows.append((label, *await scrapes(session, port, headers, rounds, running.interval)))
    finally:
        await exporter.cleanup()
        await baseline.cleanup()
    quiet = await control(time.perf_counter() - spent)

    print(f"{accounts} accounts, {rounds} scrapes each, one 15 s interval's changes before each")
    print(
        f"{'':36} {'p50 ms':>7} {'p95 ms':>7} {'CPU p50 ms':>11} {'KB':>7} {'plain KB':>9} {'loop max ms':>12} "
        f"{'longest callback CPU ms':>24}"
    )
    base = statistics.median(rows[0][1])
    for label, walls, cpus, body, worst, longest in rows:
        plain = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        print(
            f"{label:36} {ms(walls, 0.5):7.1f} {ms(walls, 0.95):7.1f} {ms(cpus, 0.5):11.1f} "
            f"{len(body) / 1024:7.0f} {len(plain) / 1024:9.0f} {1e3 * worst:12.1f} {1e3 * longest:24.1f}"
        )
    print(f"{'no scrape (control)':36} {'':7} {'':7} {'':11} {'':7} {'':9} {1e3 * quiet:12.1f}")
    print(f"p50 ratio, exporter OpenMetrics + gzip to the baseline: {statistics.median(rows[1][1]) / base:.2f}")


def memory(accounts: int) -> None:
    """Bytes per account the metric store holds, by module, for ``accounts`` running accounts."""
    tracemalloc.start()
    Running(5)  # the first use's imports and caches
    before = tracemalloc.take_snapshot()
    running = Running(accounts)
    built = tracemalloc.take_snapshot()
    try:
        from exporter.metrics.labelled import exposition

        exposition(running.metrics.registry, openmetrics=True, gzipped=True)
    except ImportError:  # a version that keeps nothing between scrapes
        from exporter.metrics.labelled import openmetrics_exposition

        gzip.compress(openmetrics_exposition(running.metrics.registry), compresslevel=GZIP_LEVEL)
    scraped = tracemalloc.take_snapshot()

    def by_module(snapshot: tracemalloc.Snapshot, since: tracemalloc.Snapshot) -> Counter[str]:
        held: Counter[str] = Counter()
        for stat in snapshot.compare_to(since, "filename"):
            name = stat.traceback[0].filename
            if "/exporter/" in name:
                held["exporter." + name.split("/exporter/")[-1].removesuffix(".py").replace("/", ".")] += stat.size_diff
        return held

    print(f"{accounts} accounts as running; bytes per account held by the metric store (tracemalloc):")
    store = by_module(built, before)
    for name, size in store.most_common():
        if abs(size) / accounts >= 10:
            print(f"  {size / accounts:8.0f}  {name}")
    print(f"  {sum(store.values()) / accounts:8.0f}  in all")
    kept = by_module(scraped, built)
    print(f"  {sum(kept.values()) / accounts:8.0f}  more after a gzipped OpenMetrics scrape (what it keeps), of which:")
    for stat in scraped.compare_to(built, "lineno")[:4]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / accounts:8.0f}    {frame.filename.split('/exporter/')[-1]}:{frame.lineno}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=15)
    parser.add_argument("--memory", action="store_true", help="the metric store's bytes per account instead")
    args = parser.parse_args()
    if args.memory:
        memory(args.accounts)
    else:
        asyncio.run(run(args.accounts, args.scrapes))


if __name__ == "__main__":
    main()
