"""How long the status board takes as the number of accounts grows.

For 1, 100 and 1,000 accounts, each with 15 minutes of history (180 samples, every 5 s)
and some events, prints: one sample of every account (done on the event loop every 5 s),
one page (built in a worker thread per request: a fresh read of the metrics, the model, the
HTML), one JSON answer, the page size, and the sampler's memory.

    python3 benchmarks/bench_status_page.py
"""

from __future__ import annotations

import json
import statistics
import time
import tracemalloc

from exporter.dcp import PRODUCTS
from exporter.metrics import Metrics
from exporter.status.model import Links
from exporter.status.sampler import HISTORY_SECONDS
from exporter.status.service import StatusService

START = 1_800_000_000.0


class StepClock:
    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        return self.now


def build(accounts: int, samples: int | None = None) -> tuple[Metrics, StatusService, StepClock, list[str]]:
    clock = StepClock()
    metrics = Metrics(clock=clock.time)
    names = [f"acct-{i:04d}" for i in range(accounts)]
    for name in names:
        metrics.add_account(
            name,
            environment="mainnet",
            mode="observer",
            desired_windows={"SPOT": 10},
            ping_interval=20,
            pong_timeout=10,
        )
        metrics.up.labels(name).set(1)
        metrics.ws_connected.labels(name).set(1)
        metrics.ping_gap.set_source(name, lambda: clock.now - 3.0)
        for product in PRODUCTS[:2]:
            metrics.enabled.labels(name, product).set(1)
            metrics.window.labels(name, product).set(10)
    status = StatusService(metrics, clock=clock, links=Links("https://grafana.example/d/bybit-dcp"))  # type: ignore[arg-type]
    for step in range(int(HISTORY_SECONDS / status.sampler.interval) if samples is None else samples):
        clock.now += status.sampler.interval
        for i, name in enumerate(names):
            metrics.ws_rtt.labels(name).observe(0.01 + (i + step) % 13 / 1000)
            metrics.last_poll_success.labels(name).set(clock.now)
            if (i + step) % 97 == 0:
                metrics.ws_reconnects.labels(name, "closed").inc()
        status.sample()
    return metrics, status, clock, names


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sampler_memory(accounts: int = 100) -> float:
    """Bytes the sampler holds per account once its history is full (traced apart: tracing is slow)."""
    metrics, status, clock, names = build(accounts, samples=0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(int(HISTORY_SECONDS / status.sampler.interval) + 1):
        clock.now += status.sampler.interval
        status.sample()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / accounts


def main() -> None:
    print(f"{'accounts':>8} {'sample':>10} {'page':>10} {'json':>10} {'page size':>12}")
    for accounts in (1, 100, 1000):
        metrics, status, clock, names = build(accounts)
        repeat = 20 if accounts < 1000 else 5

        def page(status: StatusService = status, names: list[str] = names, now: float = clock.now) -> str:
            return status.html(names, now=now, ready=True, account=None, telemetry_path="/metrics")

        def answer(status: StatusService = status, names: list[str] = names, now: float = clock.now) -> str:
            return json.dumps(status.json(names, now=now, ready=True, account=None))

        size = len(page().encode())
        sample, html_time, json_time = timed(status.sample, repeat), timed(page, repeat), timed(answer, repeat)
        print(
            f"{accounts:>8} {sample * 1000:>8.1f} ms {html_time * 1000:>7.1f} ms {json_time * 1000:>7.1f} ms "
            f"{size / 1024:>9.0f} KB"
        )
    print(f"sampler memory with a full history: {sampler_memory() / 1024:.1f} KB per account")


if __name__ == "__main__":
    main()
