"""How long one /metrics rendering takes as the number of watched accounts grows.

The design target is one process watching 1,000 accounts; Prometheus scrapes every
15-30 s. For 1, 10, 100 and 1,000 accounts it prints the median time of prometheus_client's
``generate_latest`` (what the exporter used to serve), of the direct text and OpenMetrics
writers, and of gzip level 1 on the text, with the sizes; and, rendering in a worker thread
(as the web handler did before it wrote on the loop in turns), the longest the event loop waited
for a 1 ms sleep. The handler's own path, with what a gzipped scrape keeps between scrapes, is
``benchmarks/bench_scrape_handler.py``.

    python3 benchmarks/bench_scrape.py
"""

from __future__ import annotations

import asyncio
import gzip
import statistics
import time
from collections.abc import Callable

from prometheus_client import generate_latest

from exporter.dcp import CATEGORIES, PRODUCTS
from exporter.metrics import ENDPOINTS, Metrics
from exporter.metrics.labelled import openmetrics_exposition, text_exposition


def build(accounts: int) -> Metrics:
    metrics = Metrics()
    now = time.time()
    for i in range(accounts):
        name = f"acct-{i:04d}"
        metrics.add_account(
            name,
            environment="mainnet",
            mode="observer",
            desired_windows={"DERIVATIVES": 10, "SPOT": 10},
            ping_interval=20,
            pong_timeout=10,
            poll_interval=30,
        )
        metrics.ping_gap.set_source(name, lambda now=now: now - 3.0)
        for product in PRODUCTS[:2]:
            metrics.enabled.labels(name, product).set(1)
            metrics.window.labels(name, product).set(10)
        for category in CATEGORIES:
            metrics.cancelled_orders.labels(name, category).inc(0)
        for rtt in (0.01, 0.02, 0.05):
            metrics.ws_rtt.labels(name).observe(rtt)
            metrics.ws_heartbeat_gap.labels(name).observe(20 + rtt)
        for endpoint in ENDPOINTS[:2]:  # the poll's two calls
            metrics.api_duration.labels("mainnet", endpoint).observe(0.04)
            metrics.rate_limit_remaining.labels(name, endpoint).set(9)
            metrics.rate_limit.labels(name, endpoint).set(10)
    return metrics


def median_ms(render: Callable[[], bytes], rounds: int) -> tuple[float, bytes]:
    samples, body = [], b""
    for _ in range(rounds):
        start = time.perf_counter()
        body = render()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples), body


async def loop_stall_ms(render: Callable[[], bytes], rounds: int) -> float:
    """The longest a 1 ms sleep on the loop overslept while ``render`` ran in a worker thread."""
    worst = 0.0
    for _ in range(rounds):
        job = asyncio.ensure_future(asyncio.to_thread(render))
        while not job.done():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - start - 0.001)
    return 1e3 * worst


def main() -> None:
    print(
        f"{'accounts':>8} {'generate_latest ms':>19} {'text ms':>8} {'openmetrics ms':>15} {'+gzip ms':>9} "
        f"{'text KB':>8} {'gzip KB':>8} {'loop stall ms':>14}"
    )
    for accounts, rounds in ((1, 200), (10, 100), (100, 20), (1000, 7)):
        registry = build(accounts).registry
        old, _ = median_ms(lambda r=registry: generate_latest(r), rounds)
        text, body = median_ms(lambda r=registry: text_exposition(r), rounds)
        om, _ = median_ms(lambda r=registry: openmetrics_exposition(r), rounds)
        zipped_ms, zipped = median_ms(lambda b=body: gzip.compress(b, compresslevel=1), rounds)
        stall = asyncio.run(loop_stall_ms(lambda r=registry: gzip.compress(text_exposition(r), 1), min(rounds, 5)))
        print(
            f"{accounts:>8} {old:>19.1f} {text:>8.1f} {om:>15.1f} {zipped_ms:>9.1f} "
            f"{len(body) / 1024:>8.0f} {len(zipped) / 1024:>8.0f} {stall:>14.1f}"
        )


if __name__ == "__main__":
    main()
