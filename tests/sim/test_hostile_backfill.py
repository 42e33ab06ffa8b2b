"""A backfill degrades, never aborts: each category on its own, every failure counted, one in flight."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
from account_harness import KEY, account, protected_client
from helpers import eventually

from exporter.metrics import Metrics
from exporter.monitor.account import AccountSupervisor


def value(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, {"account": "a", **labels}) or 0.0


async def dcp_cancels(sim, categories):
    for category in categories:
        sim.place_order(KEY, category=category)
    async with protected_client(sim, KEY, "dcp.future"):
        pass
    await eventually(lambda: sim.account(KEY).triggers, timeout=5, what="the simulator's trigger")


async def test_an_unusable_page_or_a_crash_in_one_category_leaves_the_others_read_and_counts_it(
    sim,
    caplog,
):
    t0 = time.time()
    await dcp_cancels(sim, ["linear", "inverse"])
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        sup = AccountSupervisor(account(sim), metrics, session)
        # spot (read first) gets a list for a result; inverse crashes with something no BybitError.
        sim.force_response("/v5/order/history", body=json.dumps({"retCode": 0, "result": [1, 2]}))
        real = sup.rest.order_history

        async def crash_on_inverse(category, *args, **kw):
            if category == "inverse":
                raise RecursionError("deep JSON")
            return await real(category, *args, **kw)

        sup.rest.order_history = crash_on_inverse  # type: ignore[method-assign]
        caplog.set_level(logging.ERROR)
        await sup.backfill.run(t0 - 60, time.time())
    assert value(metrics, "bybit_dcp_cancelled_orders_total", category="linear") == 1
    assert value(metrics, "bybit_dcp_backfill_failures_total", category="spot") == 1
    assert value(metrics, "bybit_dcp_backfill_failures_total", category="inverse") == 1
    assert value(metrics, "bybit_dcp_backfill_failures_total", category="linear") == 0
    crashed = [r for r in caplog.records if "backfill crashed" in r.getMessage()]
    assert len(crashed) == 1 and crashed[0].exc_info is not None  # with its traceback


async def test_gaps_reported_while_history_hangs_coalesce_into_one_backfill_in_flight(sim):
    metrics = Metrics()
    release = asyncio.Event()
    in_flight = 0
    most_in_flight = 0
    ranges: list[tuple[int, int]] = []

    async def slow_history(category, start_ms, end_ms, cursor=None):
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        ranges.append((start_ms, end_ms))
        try:
            await release.wait()
        finally:
            in_flight -= 1
        return [], None

    async with aiohttp.ClientSession() as session:
        sup = AccountSupervisor(account(sim), metrics, session, backfill_margin=0.0)
        sup.rest.order_history = slow_history  # type: ignore[method-assign]
        now = time.time()
        first = asyncio.create_task(sup.backfill.run(now - 100, now - 90))
        await eventually(lambda: in_flight == 1, what="the first backfill waiting on history")
        # The stream flaps 60 times while history hangs: each report returns at once.
        flaps = [await sup.backfill.run(now - 80 + i, now - 79 + i) for i in range(60)]
        assert flaps == [0] * 60
        release.set()
        await asyncio.wait_for(first, 10)
    assert most_in_flight == 1
    assert sup.backfill.gaps_read == 2  # the first gap, then one merged gap for all 60 flaps
    merged_start = min(start for start, _ in ranges[4:])
    assert merged_start == int((now - 80) * 1000)
    assert len(ranges) == 8  # 4 categories x 2 gaps, not 4 x 61
