"""How long one /metrics rendering takes as the number of watched accounts grows.

The design target is one process watching 1,000 accounts; Prometheus scrapes every
15-30 s, so rendering must stay far below that. Prints per-scrape time and size for
1, 10, 100 and 1,000 accounts, and the ratio against the 1-account baseline.

    python3 benchmarks/bench_scrape.py
"""

from __future__ import annotations

import statistics
import time

from prometheus_client import generate_latest

from exporter.dcp import CATEGORIES, PRODUCTS
from exporter.metrics import Metrics


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
    return metrics


def time_scrape(metrics: Metrics, rounds: int) -> tuple[float, int]:
    samples = []
    size = 0
    for _ in range(rounds):
        start = time.perf_counter()
        body = generate_latest(metrics.registry)
        samples.append(time.perf_counter() - start)
        size = len(body)
    return statistics.median(samples), size


def main() -> None:
    baseline = None
    print(f"{'accounts':>8} {'median ms':>10} {'bytes':>10} {'ms/account':>11} {'x baseline':>10}")
    for accounts, rounds in ((1, 200), (10, 100), (100, 20), (1000, 5)):
        seconds, size = time_scrape(build(accounts), rounds)
        baseline = baseline or seconds
        print(
            f"{accounts:>8} {seconds * 1e3:>10.2f} {size:>10} {seconds * 1e3 / accounts:>11.3f} {seconds / baseline:>10.1f}"
        )


if __name__ == "__main__":
    main()
