"""Throughput of DCP-trigger accounting, and the cost of deduplication.

A DCP trigger on a busy account cancels thousands of orders at once, and a backfill
after a reconnect feeds the same orders again. Prints orders/second through
TriggerTracker.take for a fresh burst, for the same burst replayed (all duplicates,
the backfill case), and for a baseline that only filters CancelByDCP orders without
counting or deduplicating (the floor any implementation pays).

    python3 benchmarks/bench_triggers.py
"""

from __future__ import annotations

import time

from exporter.dcp import CANCEL_BY_DCP
from exporter.monitor.triggers import TriggerTracker

CATEGORIES = ("linear", "inverse", "spot", "option")


def burst(n: int, start_ms: int) -> list[dict]:
    return [
        {
            "orderId": f"o-{start_ms}-{i}",
            "category": CATEGORIES[i % 4],
            "orderStatus": "Cancelled",
            "cancelType": CANCEL_BY_DCP,
            "updatedTime": str(start_ms + i % 500),
        }
        for i in range(n)
    ]


def rate(fn, orders: list[dict], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(orders)
        best = min(best, time.perf_counter() - start)
    return len(orders) / best


NOW = 1_700_000_060.0


def main() -> None:
    n = 50_000
    orders = burst(n, 1_700_000_000_000)

    def baseline(batch: list[dict]) -> None:
        sum(1 for o in batch if o.get("cancelType") == CANCEL_BY_DCP)

    def fresh(batch: list[dict]) -> None:
        TriggerTracker().take(batch, NOW)

    replay_tracker = TriggerTracker()
    replay_tracker.take(orders, NOW)

    def replay(batch: list[dict]) -> None:
        replay_tracker.take(batch, NOW)

    base = rate(baseline, orders)
    print(f"{'case':<34} {'orders/s':>12} {'x slower':>11}")
    for name, fn in (
        ("baseline (filter only)", baseline),
        ("fresh burst (count + dedup)", fresh),
        ("replayed burst (all duplicates)", replay),
    ):
        r = rate(fn, orders)
        print(f"{name:<34} {r:>12,.0f} {base / r:>11.1f}")


if __name__ == "__main__":
    main()
